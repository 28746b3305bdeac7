"""Audit pinned requirements for known vulnerabilities with pip-audit (`make test`, `make audit`).

    python scripts/audit_requirements.py [REQUIREMENTS ...]   (default: requirements.txt)

Exit 1 when pip-audit reports a known vulnerability in a pin. When the advisory service
cannot be reached (no network, a proxy that refuses, a mirror that answers for none of
the pins) it prints that the audit was skipped and exits 0: the suite never fails for
want of a network, and never passes silently either.

pip-audit runs with --no-deps --disable-pip: the files are fully pinned, so nothing
needs resolving or installing; each pin costs one query to the advisory service.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_SECONDS = 300
# The last line of pip-audit's traceback when its HTTP client could not reach the service.
NETWORK_ERRORS = (
    "requests.exceptions.ConnectionError",
    "requests.exceptions.ProxyError",
    "requests.exceptions.SSLError",
    "requests.exceptions.ConnectTimeout",
    "requests.exceptions.ReadTimeout",
    "requests.exceptions.Timeout",
    "ServiceError",
)


def verdict(report: dict) -> tuple[int, list[str]]:
    """(exit code, lines to print) for pip-audit's JSON report."""
    dependencies = report.get("dependencies", [])
    vulnerable = [d for d in dependencies if d.get("vulns")]
    skipped = [d for d in dependencies if d.get("skip_reason")]
    if vulnerable:
        lines = ["pip-audit: known vulnerabilities in pinned requirements:"]
        for dep in vulnerable:
            for vuln in dep["vulns"]:
                fixes = ", ".join(vuln.get("fix_versions") or []) or "no fixed release"
                lines.append(f"  {dep['name']}=={dep.get('version', '?')}: {vuln['id']} (fixed in: {fixes})")
        return 1, lines
    if dependencies and len(skipped) == len(dependencies):
        return 0, [
            f"pip-audit: SKIPPED - the advisory service answered for none of the {len(dependencies)} pins "
            f"(e.g. {skipped[0]['skip_reason']}); no vulnerability check was made."
        ]
    lines = [f"pip-audit: no known vulnerabilities in {len(dependencies) - len(skipped)} pins."]
    lines += [f"  not audited: {d['skip_reason']}" for d in skipped]
    return 0, lines


def audit(requirements: Path) -> int:
    command = [
        sys.executable,
        "-m",
        "pip_audit",
        "--requirement",
        str(requirements),
        "--no-deps",
        "--disable-pip",
        "--format",
        "json",
        "--progress-spinner",
        "off",
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        print(f"pip-audit: SKIPPED - the advisory service did not answer within {TIMEOUT_SECONDS} s.")
        return 0
    try:
        report = json.loads(done.stdout)
    except ValueError:
        last = (done.stderr.strip().splitlines() or [""])[-1]
        if any(error in last for error in NETWORK_ERRORS):
            print(f"pip-audit: SKIPPED - the advisory service cannot be reached ({last[:200]}).")
            return 0
        print(f"pip-audit failed (exit {done.returncode}):\n{done.stderr[-3000:]}", file=sys.stderr)
        return 2
    code, lines = verdict(report)
    print(f"{requirements.name}:", *lines, sep="\n")
    return code


def main(argv: list[str]) -> int:
    files = [Path(arg) for arg in argv] or [ROOT / "requirements.txt"]
    return max(audit(path) for path in files)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
