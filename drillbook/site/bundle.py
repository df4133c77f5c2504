"""The offline bundle as one zip: `python -m drillbook.site.bundle SITE_DIR OUT.zip`.

Every file of the site goes under one folder named after the archive (`drillbook-offline/`),
so that unpacking it never scatters pages into the current folder.
"""

from __future__ import annotations

import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path


def bundle(site: Path, archive: Path, *, folder: str | None = None) -> Path:
    """Zip every file under `site` into `archive`, inside `folder` (default: the archive's stem)."""
    if not (site / "index.html").is_file():
        raise FileNotFoundError(f"{site} holds no built site (no index.html): build it first")
    top = folder or archive.stem
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(site.rglob("*")):
            if path.is_file():
                zipped.write(path, f"{top}/{path.relative_to(site).as_posix()}")
    return archive


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m drillbook.site.bundle SITE_DIR OUT.zip", file=sys.stderr)
        return 2
    archive = bundle(Path(args[0]), Path(args[1]))
    print(f"{archive}: unpacks into {archive.stem}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
