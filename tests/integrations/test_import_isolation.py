"""`import scsa` (and `import scsa.integrations`) never imports ultralytics (AGPL-3.0)."""

import subprocess
import sys


def test_import_scsa_does_not_import_ultralytics():
    code = (
        "import sys, scsa, scsa.integrations, scsa.models, scsa.attention\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('ultralytics', 'thop'))\n"
        "print(bad)\n"
        "raise SystemExit(1 if bad else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
