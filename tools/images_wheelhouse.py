"""Complete a wheelhouse for the image's Python: pip resolved it for this host's, and markers differ.

``pip wheel`` evaluates environment markers against the Python that runs it, and ``--python-version``
changes only which wheel tags fit, not the markers. A host on 3.11.7 therefore leaves out what a
3.11.2 image needs (``async-timeout; python_full_version < "3.11.3"``, from redis). This reads every
wheel's requirements, evaluates their markers for the image's Python, and downloads what is missing
(through this machine's pip configuration) until nothing is.

    python tools/images_wheelhouse.py deploy/docker/wheels 3.11.2
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path
from typing import cast

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename


def missing(wheelhouse: Path, python_version: str) -> set[str]:
    """Requirements of the wheels there that hold on ``python_version`` and that no wheel there provides."""
    env: dict[str, str] = {
        **cast(dict[str, str], default_environment()),
        "python_full_version": python_version,
        "python_version": ".".join(python_version.split(".")[:2]),
        "extra": "",
    }
    wheels = list(wheelhouse.glob("*.whl"))
    have = {canonicalize_name(parse_wheel_filename(p.name)[0]) for p in wheels}
    wanted: set[str] = set()
    for path in wheels:
        with zipfile.ZipFile(path) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            metadata = Parser().parsestr(archive.read(name).decode())
        for line in metadata.get_all("Requires-Dist") or []:
            requirement = Requirement(line)
            if requirement.marker and not requirement.marker.evaluate(env):
                continue
            if canonicalize_name(requirement.name) not in have:
                requirement.marker = None
                wanted.add(str(requirement))
    return wanted


def main() -> None:
    wheelhouse, python_version = Path(sys.argv[1]), sys.argv[2]
    for _ in range(5):  # each round may bring requirements of its own
        wanted = missing(wheelhouse, python_version)
        if not wanted:
            return
        print(f"images: for Python {python_version} also: {' '.join(sorted(wanted))}", file=sys.stderr)
        pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--prefer-binary", "--wheel-dir", str(wheelhouse)]
        subprocess.run([*pip, *sorted(wanted)], check=True)
    left = sorted(missing(wheelhouse, python_version))
    sys.exit(f"images: the wheelhouse for Python {python_version} is still incomplete: {left}")


if __name__ == "__main__":
    main()
