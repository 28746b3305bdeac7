#!/usr/bin/env bash
# Run pytest; "no tests collected" (exit 5) is a failure, not a silent pass.
set -uo pipefail
.venv/bin/pytest "$@"
rc=$?
if [[ $rc -eq 5 ]]; then
    echo "pytest collected no tests: treating that as a failure." >&2
    exit 1
fi
exit $rc
