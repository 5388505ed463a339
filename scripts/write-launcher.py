"""Write .venv/bin/pyruntime and .venv/bin/dockee-cni-bridge: launchers that start faster than pip's
console scripts.

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
# (console script, module whose main() it runs): dockee-cni-bridge runs at every container start
# and stop (an OCI hook, a CNI caller's exec), so it gets the same lean start as pyruntime
for name, module in (("pyruntime", "pyruntime.main"), ("dockee-cni-bridge", "pyruntime.dockee.network.plugin")):
    launcher = venv / "bin" / name
    text = (
        f"#!{venv / 'bin' / 'python'} -IS\n"
        "import sys\n"
        f"sys.path[0:0] = {paths!r}\n"
        f"from {module} import main\n"
        "main()\n"
    )
    tmp = launcher.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.chmod(0o755)
    os.replace(tmp, launcher)
    print(f"launcher: {launcher}")
