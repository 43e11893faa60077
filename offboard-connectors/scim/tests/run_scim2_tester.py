"""Runs scim2-tester (PyPI) against a SCIM service provider and prints one JSON object per
check result: {"status", "title", "resource_type", "reason"}.

Usage: python run_scim2_tester.py BASE_URL BEARER_TOKEN [EXCLUDED_TAG...]
Run by tests/simulator_compliance.rs with the virtualenv scripts/services/scim.sh makes.
"""

import json
import sys

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import check_server
from scim2_tester import get_all_available_tags


def main() -> None:
    url, token, *excluded = sys.argv[1:]
    http = httpx2.Client(base_url=url, headers={"Authorization": f"Bearer {token}"})
    # scim2-tester's `exclude_tags` also skips the discovery checks every other check needs
    # (tagged "*"), so the excluded tags are left out of an explicit inclusion instead.
    included = {t for t in get_all_available_tags() if t not in excluded}
    results = check_server(SyncSCIMClient(http), include_tags=included)
    for r in results:
        print(
            json.dumps(
                {
                    "status": r.status.name,
                    "title": r.title,
                    "resource_type": getattr(r, "resource_type", None),
                    "reason": r.reason,
                }
            )
        )


if __name__ == "__main__":
    main()
