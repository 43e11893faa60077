-- Releases the previous chunk's savepoints (its first, offboard_w0, and every one after it),
-- keeping what its writes did in the group's transaction.
RELEASE offboard_w0
