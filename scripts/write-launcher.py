"""Write .venv/bin/pyruntime: a launcher that starts faster than pip's console script.

pip's script imports `re` and runs `site` (venv .pth processing); together that is most of
`pyruntime state`'s budget.  This one runs the venv's interpreter isolated and without
site (-I -S: no PYTHON* variables, so bytecode is cached even under
PYTHONDONTWRITEBYTECODE) and puts the project and the venv's site-packages on sys.path.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

repo = Path(__file__).resolve().parent.parent
venv = Path(sys.prefix)
site_packages = sysconfig.get_paths()["purelib"]
platlib = sysconfig.get_paths()["platlib"]
paths = [str(repo), site_packages] + ([platlib] if platlib != site_packages else [])
launcher = venv / "bin" / "pyruntime"
text = (
    f"#!{venv / 'bin' / 'python'} -IS\n"
    "import sys\n"
    f"sys.path[0:0] = {paths!r}\n"
    "from pyruntime.main import main\n"
    "main()\n"
)
tmp = launcher.with_suffix(".tmp")
tmp.write_text(text)
tmp.chmod(0o755)
os.replace(tmp, launcher)
print(f"launcher: {launcher}")
