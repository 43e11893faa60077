//! offboard connector for Entra ID (Azure AD) via Microsoft Graph, on the shared
//! [`offboard_http::graph`] client.
//!
//! # Actions
//!
//! | action | reversible | critical | after | calls | permission |
//! |---|---|---|---|---|---|
//! | `entra.disable_sign_in` | yes | no | `ad.disable` | `GET /users/{id}`, `PATCH /users/{id}` (cloud users only) | `User.ReadWrite.All` |
//! | `entra.revoke_sessions` | no | no | (none: runs even when a disable failed) | `POST /users/{id}/revokeSignInSessions` (synced users: at once and again after the sync) | `User.ReadWrite.All` |
//! | `entra.remove_groups` | yes (re-add) | no | | `GET …/memberOf`, `$batch` of `DELETE /groups/{g}/members/{id}/$ref` | `GroupMember.ReadWrite.All` (role-assignable groups: also `RoleManagement.ReadWrite.Directory`) |
//! | `entra.remove_app_roles` | yes (re-create) | no | | `GET`, `$batch` of `DELETE /users/{id}/appRoleAssignments/{a}` | `AppRoleAssignment.ReadWrite.All` |
//! | `entra.remove_grants` | no | no | | `GET …/oauth2PermissionGrants`, `$batch` of `DELETE /oauth2PermissionGrants/{g}` (`Principal` only) | `DelegatedPermissionGrant.ReadWrite.All` |
//! | `entra.remove_auth_methods` | no | no | | `GET …/authentication/methods`, `$batch` of `DELETE …/{kind}Methods/{m}` | `UserAuthenticationMethod.ReadWrite.All` |
//! | `entra.remove_directory_roles` | yes (re-created at the same scope) | when privileged (see below) | | `GET …/memberOf`; `GET /roleManagement/directory/roleAssignments` and `…/roleEligibilitySchedules` (`$filter=principalId eq '…'`, `$expand=roleDefinition`); `$batch` of `DELETE /roleManagement/directory/roleAssignments/{a}`; `POST /roleManagement/directory/roleEligibilityScheduleRequests` `adminRemove`; leftover legacy memberships `DELETE /directoryRoles/{r}/members/{id}/$ref`; rollback `POST …/roleAssignmentScheduleRequests` / `…/roleEligibilityScheduleRequests` `adminAssign` | `RoleManagement.ReadWrite.Directory` (reads, and every lookup: `RoleManagement.Read.Directory`) |
//! | `entra.hand_over_owned` | yes (leaver re-added, new owner removed where the hand-over added it) | no | | `GET …/ownedObjects`, `GET …/manager` or `GET /users/{to}`; per object `GET /{groups,applications,servicePrincipals}/{o}/owners`, `POST …/owners/$ref`, then `DELETE …/owners/{id}/$ref` (see below) | `Group.ReadWrite.All` (role-assignable groups: also `RoleManagement.ReadWrite.Directory`), `Application.ReadWrite.All` |
//! | `entra.clear_manager` | yes (set again) | no | hand over | `GET /users/{id}`, `GET …/manager` (404: none), `DELETE /users/{id}/manager/$ref`; rollback `PUT /users/{id}/manager/$ref` `{"@odata.id": "<base>/users/{m}"}` | `User.ReadWrite.All` |
//! | `entra.clear_immutable_id` | yes (patched back) | no | | `GET /users/{id}?$select=…,onPremisesImmutableId`, `PATCH /users/{id}` `{"onPremisesImmutableId": null}` (cloud-only users; off by default, see below) | `User.ReadWrite.All` |
//! | `entra.disable_devices` | yes (re-enabled) | no | | `GET …/ownedDevices`, `GET …/registeredDevices`, `PATCH /devices/{d}` `{"accountEnabled": false}`; rollback `GET /devices/{d}`, `PATCH` `{"accountEnabled": true}` (app-only: Windows devices only, see below) | `Device.ReadWrite.All` (reads: `Device.Read.All`) |
//! | `entra.intune_wipe` | no | yes | | `GET …/managedDevices` (primary user exactly this user), `POST /deviceManagement/managedDevices/{m}/wipe` `{}` | `DeviceManagementManagedDevices.PrivilegedOperations.All` (reads: `DeviceManagementManagedDevices.Read.All`) |
//! | `entra.intune_retire` | no | yes | | `GET …/managedDevices` (as above), `POST /deviceManagement/managedDevices/{m}/retire` | `DeviceManagementManagedDevices.PrivilegedOperations.All` (reads: `DeviceManagementManagedDevices.Read.All`) |
//! | `entra.remove_access_packages` | yes (`adminAdd` again) | no | | `GET /users/{id}`, `GET /identityGovernance/entitlementManagement/assignments?$filter=target/objectId eq '{id}'&$expand=target,accessPackage,assignmentPolicy`, `GET …/assignmentRequests?$filter=assignment/target/objectId eq '{id}'&$expand=assignment,accessPackage` (both filters unverified), `POST …/assignmentRequests` `{"requestType": "adminRemove", "assignment": {"id": …}}` (see below) | `EntitlementManagement.ReadWrite.All` (reads: `EntitlementManagement.Read.All`) |
//! | `entra.run_lifecycle_workflow` | no | yes | | `GET /identityGovernance/lifecycleWorkflows/workflows`, `GET …/workflows/{w}/userProcessingResults`, `POST …/workflows/{w}/microsoft.graph.identityGovernance.activate` `{"subjects": [{"id": …}]}` (see below) | `LifecycleWorkflows-Workflow.Activate` or `LifecycleWorkflows.ReadWrite.All`; reads `LifecycleWorkflows.Read.All` (Microsoft Entra ID Governance licences) |
//! | `entra.delete` | yes (restore) | yes | disable, revoke, hand over, devices, access packages, workflow | `DELETE /users/{id}`; rollback `POST /directory/deletedItems/{id}/restore` | `User.ReadWrite.All` |
//!
//! Every action reads state first: a repeat reports `already_done`, a dry run predicts the
//! outcome, a user who no longer exists reports `not_found` (delete: `already_done`).
//!
//! # Directory roles
//! `entra.remove_directory_roles` removes every directory role the leaver holds directly:
//! active unified role assignments at any scope (tenant-wide `/` or an administrative unit,
//! one `$batch` of `DELETE`s), PIM eligibilities (`roleEligibilityScheduleRequests` with
//! `adminRemove`, so the person cannot activate the role later), then any `directoryRole`
//! still in `memberOf` through the legacy `DELETE /directoryRoles/{r}/members/{id}/$ref`.
//! Roles held through a role-assignable group the leaver is in are named in the detail
//! (role and group) and left alone: they go with the group membership, which
//! `entra.remove_groups` removes (with `RoleManagement.ReadWrite.Directory`, else it fails
//! naming the group). A role Graph refuses to remove (403 without
//! `RoleManagement.ReadWrite.Directory`) fails the task by name after the others were
//! removed. The snapshot records each role, scope and eligibility end; rollback re-creates
//! what is missing with `adminAssign` schedule requests (start now, the original end or no
//! expiration). `verify_revoked` lists active, eligible and group-held roles; it reads them
//! for every user, so it needs `RoleManagement.Read.Directory` (without it: Graph's 403, the
//! verification fails rather than calling the person revoked with roles unseen).
//!
//! # Privileged accounts
//! The lookup reads the user's roles (as above, `RoleManagement.Read.Directory`) and marks
//! the account privileged ([`offboard_core::PRIVILEGED_ATTRIBUTE`], e.g. "directory roles:
//! Global Administrator, Security Administrator (eligible)") when it holds one of the roles
//! Microsoft labels privileged (plus Exchange and SharePoint Administrator), active, eligible
//! or through a role-assignable group: the planner then makes every action on it critical.
//! When Graph refuses that read (403) the lookup fails with an error naming
//! `RoleManagement.Read.Directory` rather than calling the person unprivileged.
//!
//! # Hand-over of owned objects
//! `entra.hand_over_owned` gives every group, app registration and enterprise app the leaver
//! owns a new owner: the action parameter `to` (`{"to": "<user id or UPN>"}`, read with
//! `GET /users/{to}` and accepted only when Graph answers with that id or UPN), else the
//! leaver's manager in Entra. The new owner is added first and the leaver removed only once
//! that succeeded, so no object is left without an owner. Objects it cannot hand over (no
//! manager and no `to`; Graph refuses, e.g. a role-assignable group without
//! `RoleManagement.ReadWrite.Directory`) fail the task by name after the others were handed
//! over; the leaver stays their owner and `verify_revoked` keeps listing them. It has no
//! `after`: nothing unrelated can block it; `entra.delete` and `entra.clear_manager` (whose
//! link it reads) wait for it.
//!
//! # Devices
//! `entra.disable_devices` disables the Entra device objects the leaver owns or registered.
//! Graph's device-update page says an app-only caller may change only `extensionAttributes`
//! of a non-Windows device: disabling a phone or a Mac needs a delegated administrator.
//! The connector still asks (a delegated setup may allow it), and every device Graph refuses
//! fails the task by name, after the others were disabled, never counted as disabled;
//! `verify_revoked` keeps listing each enabled device.
//!
//! `entra.intune_wipe` and `entra.intune_retire` act on Intune managed devices whose
//! `userId` (primary user) is exactly the leaver's id; a device of another user, however
//! alike the name, is never touched. Both are critical (a plan needs confirmation) and cannot
//! be undone; a device with that action (or a wipe, for retire) pending, running or done in
//! `deviceActionResults` is already handled. They are named `entra.*`, not `intune.*`,
//! because an action's name starts with its connector's app and these are Graph calls on the
//! Entra user. `verify_revoked` lists managed devices with no wipe or retire under way.
//!
//! `verify_revoked` reads every user's devices and managed devices whatever the policy
//! offboards, so it needs `Device.Read.All` and `DeviceManagementManagedDevices.Read.All`
//! too: without them Graph answers 403 and the verification fails with that error (the
//! engine reports Entra as not checked) rather than calling the person revoked with devices
//! unseen.
//!
//! # Access packages
//! `entra.remove_access_packages` asks entitlement management to remove each delivered
//! assignment of the leaver (`adminRemove`, 201 `submitted`). The removal is asynchronous:
//! until it is processed the assignment still reads `delivered`, so an assignment with an
//! open removal request counts as handled (a repeat is `already_done` and sends nothing) and
//! `verify_revoked` lists only delivered assignments with no removal under way. Expired
//! assignments are ignored. Open requests that would give the leaver a package cannot be
//! cancelled with application permissions (the cancel page: "Not supported"), so the action
//! never calls cancel: after the removals it fails naming each open request, because an
//! approval would give the access back (cancel them in My Access or with the Lifecycle
//! Workflows task), and `verify_revoked` lists them. Rollback sends `adminAdd` with the saved
//! access package, assignment policy and target for each package the user no longer holds;
//! while a removal is still processed it is an `in_progress` error. `verify_revoked` reads
//! these lists for every user, so it needs `EntitlementManagement.Read.All` too.
//!
//! # The tenant's own Lifecycle Workflows: `entra.run_lifecycle_workflow`
//! With Microsoft Entra ID Governance, a tenant may already keep a leaver workflow (tasks
//! such as e-mails to the manager, or cancelling pending access package requests, which
//! Graph v1.0 does not let an app do itself). `entra.run_lifecycle_workflow` runs the one its
//! parameters name (`{"workflow": "<id or exact displayName>"}`, required: never guessed;
//! none or two matching fail, a joiner or mover workflow is refused) on demand for the leaver,
//! once per task: a run of it for this user scheduled since the task first started is found
//! in `userProcessingResults` and reported `already_done` (or fails the task when it ended
//! with errors). Critical: the workflow's tasks are the tenant's, and may delete the user.
//! Graph runs it asynchronously; what its tasks change, `verify_revoked` reads.
//!
//! # Entra Lifecycle Workflows: parity
//! Every built-in task of the Leaver category (Microsoft's task list,
//! `docs/includes/lifecycle-workflows-tasks-table.md` in `MicrosoftDocs/entra-docs`, read at
//! commit `011d6ad`) and what offboard does instead:
//!
//! | Lifecycle Workflows task (taskDefinitionId) | offboard |
//! |---|---|
//! | Disable user account (`1dfdfcc7…`) | `entra.disable_sign_in` (users synced from AD: `ad.disable`, then verified here); `entra.revoke_sessions` ends the sessions too, which the task does not |
//! | Enable user account (`6fc52c9d…`, Joiner/Leaver) | rollback of `entra.disable_sign_in` (`Engine::rollback`) |
//! | Remove user from selected groups (`1953a66c…`) / Remove users from all groups (`b3a31406…`) | `entra.remove_groups`: every assigned cloud group (dynamic and AD-synced ones reported; mail-enabled, distribution and role-assignable ones Graph refuses named); selecting groups is not offered: a leaver leaves all |
//! | Remove user from teams (`06aa7acb…`) / from all teams (`81f7b200…`) | `o365.remove_teams` (after `entra.remove_groups`; a team's membership is its Microsoft 365 group's) |
//! | Remove access package assignment for user (`4a0b64f2…`) / all (`42ae2956…`) | `entra.remove_access_packages` (`adminRemove` requests, reported per package) |
//! | Cancel all pending access package assignment requests for user (`498770d9…`) | Graph v1.0 refuses the cancel with application permissions (delegated only): `entra.remove_access_packages` names each pending request and fails the task by name; `entra.run_lifecycle_workflow` runs a tenant workflow holding this task |
//! | Remove selected license assignments (`5fc402a8…`) / all (`8fa97d28…`) | `o365.remove_licenses`: every direct licence, after the mailbox work (licences inherited from a group go with the membership) |
//! | Delete user (`8d18588d…`) | `entra.delete` (critical; soft, restorable 30 days, rollback restores) |
//! | Send email to manager before user's last day (`52853a3e…`), on user's last day (`9c0a1eaf…`), to user's manager after their last day (`6f22ddd4…`) | not a directory change: the host tells people (the engine's progress updates and audit trail carry every step); `entra.run_lifecycle_workflow` runs a tenant workflow holding these tasks |
//! | Run a custom task extension (`4262b724…`) | the host's own [`offboard_core::Connector`] (or a delegate, `method = "delegate"`), ordered with `[[order]]` |
//! | Add user to groups (`22085229…`) / Add user to teams (`e440ed8d…`) (Joiner, Leaver, Mover) | not offered: offboard removes access and `verify_revoked` counts every membership left as access kept; `entra.run_lifecycle_workflow` runs a tenant workflow that adds the leaver to, say, a Conditional Access block group |
//!
//! Beyond these tasks offboard also revokes sessions, app role assignments, delegated grants
//! and authentication methods, removes directory roles (PIM eligibilities included), hands
//! owned groups and apps to the manager, clears the manager link, disables devices,
//! retires or wipes Intune devices and cancels the leaver's meetings, each verified after.
//!
//! # Users synced from on-premises AD
//! `onPremisesSyncEnabled` users are mastered in AD: `entra.disable_sign_in` is ordered after
//! `ad.disable` (ActionSpec `after`, honoured across apps by the planner) and only verifies
//! that the sync carried `accountEnabled=false` over: `already_done` once it has, an
//! `in_progress` error (checked again after 5 minutes, no retry attempt spent) until then.
//! `entra.revoke_sessions` revokes at once, waits for the sync the same way and revokes again
//! once the account is disabled. Group memberships of AD-synced and dynamic groups are
//! reported, never changed.
//!
//! # Hybrid hygiene: `entra.clear_immutable_id` (off by default)
//! `onPremisesImmutableId` is the anchor Entra Connect hard-matches an AD account to its Entra
//! user by. When a leaver's account has been converted to cloud-only (taken out of sync
//! scope), clearing it stops a later sync from re-attaching a recycled AD account to the old
//! Entra user. On a user still synced it would break the hard match (the next sync could
//! create a duplicate user or orphan this one), and Graph refuses the change for synced users:
//! the action refuses a user whose `onPremisesSyncEnabled` is true with an error saying so,
//! sending nothing. It is therefore never part of a plan unless a policy names it; rollback
//! patches the old value back.
//!
//! # Groups Graph cannot change
//! Mail-enabled security groups and distribution lists are managed in Exchange Online (Graph
//! refuses their member changes), and role-assignable groups need
//! `RoleManagement.ReadWrite.Directory`. `entra.remove_groups` removes every other group,
//! then fails with an `unsupported` error naming these (never counted as removed);
//! `verify_revoked` keeps listing them. Grant `RoleManagement.ReadWrite.Directory` to have
//! role-assignable groups removed too.
//!
//! # Lookup
//! Exact, ASCII-case-insensitive match of the person's email and aliases against
//! `userPrincipalName`, `mail`, `smtp:` proxy addresses and `otherMails` through one
//! `$filter` built by [`offboard_http::graph::user_filter`] (OData literals with `'` doubled,
//! control characters and identifiers over 256 bytes refused before any request), filtered
//! again locally. Zero users: `None`; two or more: `Ambiguous`.
//!
//! # Source of truth
//! [`EntraSource`] reads users incrementally from `GET /users/delta()` (`User.Read.All`): a
//! full round on the first poll, then only the delta link stored in the cursor; `@removed`
//! users are read in `/directory/deletedItems`; an expired token (410 `syncStateNotFound`)
//! falls back to a full round diffed against the cursor. See its docs.
//!
//! # Example
//! ```no_run
//! use offboard_azure::AzureConfig;
//! use offboard_core::{Connector, LookupRequest, Person};
//!
//! # async fn demo() -> offboard_core::Result<()> {
//! let entra = AzureConfig::from_env().build()?;
//! let account = entra.lookup(&LookupRequest::person(Person::new("p1", "jane@example.com"))).await?;
//! # let _ = account; Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod actions;
mod client;
mod config;
mod connector;
mod source;

pub use config::{AzureConfig, GRAPH_URL};
pub use connector::{APP, EntraConnector};
pub use source::EntraSource;
