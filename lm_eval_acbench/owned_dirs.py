"""Folders acbench made: the only folders it ever deletes or replaces.

Every folder acbench may later delete or replace (a compressed checkpoint; a study's staging,
evaluation, logit-log, analysis and report folders; a cached model) is created with the marker
file ``.acbench-owned`` inside it. :func:`remove_owned_dir` and :func:`replace_owned_dir` act
only on a folder that carries the marker and lies inside the root folder the caller names
(the study's ``out``, the parent of ``--out``, the model cache); anything else -- a folder a user
typed into ``model_args`` or ``--out``, a folder from before the marker existed, a symlink, a
file -- is refused with a one-line :class:`~lm_eval_acbench.errors.UserError`, and nothing is
touched. The marker is written before anything else goes into a new folder, so a folder left
behind by a killed run is still recognised as ours.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from lm_eval_acbench.errors import UserError

MARKER = ".acbench-owned"
_MARKER_TEXT = json.dumps({"created_by": "lm_eval_acbench",
                           "note": "acbench may delete or replace this folder; remove this file to keep it"})


def is_owned(folder: str | Path) -> bool:
    """Whether ``folder`` is a real folder (not a symlink) holding our marker as a regular file."""
    folder = Path(folder)
    marker = folder / MARKER
    return (folder.is_dir() and not folder.is_symlink()
            and marker.is_file() and not marker.is_symlink())


def _inside(folder: Path, root: Path) -> Path:
    """``folder`` made absolute; a UserError unless it lies strictly inside ``root``."""
    resolved_root = Path(root).expanduser().resolve()
    absolute = Path(os.path.abspath(Path(folder).expanduser()))
    # The folder itself may be a symlink (refused later); its parent chain must resolve inside.
    real_parent = absolute.parent.resolve()
    if absolute.name in ("", ".", "..") or not (
            real_parent == resolved_root or real_parent.is_relative_to(resolved_root)):
        raise UserError(f"{absolute} is not inside {resolved_root}: acbench deletes or replaces "
                        "only folders it made inside its own output folder")
    return real_parent / absolute.name


def _refuse(folder: Path, action: str) -> UserError:
    return UserError(f"refusing to {action} {folder}: acbench did not make it (no {MARKER} marker "
                     "inside); move it away or choose another output folder")


def _is_empty_dir(folder: Path) -> bool:
    return folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir())


def mark(folder: str | Path) -> Path:
    """Write the marker into an existing folder that acbench has just made; return the folder."""
    folder = Path(folder)
    (folder / MARKER).write_text(_MARKER_TEXT + "\n", encoding="utf-8")
    return folder


def make_owned_dir(folder: str | Path, *, root: str | Path) -> Path:
    """Create ``folder`` (inside ``root``) with the marker; return it.

    An existing folder is accepted when it is ours or empty (an empty folder holds nothing to
    lose, so it is claimed); any other existing path is refused.
    """
    target = _inside(Path(folder), Path(root))
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise _refuse(target, "write into")
    if target.is_dir():
        if is_owned(target):
            return target
        if not _is_empty_dir(target):
            raise _refuse(target, "write into")
        return mark(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Marked before it appears under its name: a kill never leaves an unmarked folder there.
    fresh = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
    mark(fresh)
    try:
        os.rename(fresh, target)
    except OSError:
        shutil.rmtree(fresh, ignore_errors=True)
        if not is_owned(target):  # another process made it first, or it is someone else's
            raise _refuse(target, "write into") from None
    return target


def remove_owned_dir(folder: str | Path, *, root: str | Path) -> None:
    """Delete ``folder`` and everything in it, only if it is ours and inside ``root``.

    A missing folder is fine (nothing to do); anything else that is not ours is refused.
    """
    target = _inside(Path(folder), Path(root))
    if not target.exists() and not target.is_symlink():
        return
    if not is_owned(target):
        raise _refuse(target, "delete")
    shutil.rmtree(target)


def replace_owned_dir(staging: str | Path, final: str | Path, *, root: str | Path) -> Path:
    """Move the finished folder ``staging`` (ours) to ``final``, replacing an old ``final`` only
    if that is ours too; both must lie inside ``root``. Returns ``final``.

    The old folder is moved aside before the new one is renamed into place and deleted after,
    so at every moment ``final`` is either the old complete folder or the new one.
    """
    source = _inside(Path(staging), Path(root))
    target = _inside(Path(final), Path(root))
    if not is_owned(source):
        raise _refuse(source, "publish")
    aside = None
    if _is_empty_dir(target):  # holds nothing to lose; a rename replaces an empty folder
        pass
    elif target.exists() or target.is_symlink():
        if not is_owned(target):
            raise _refuse(target, "replace")
        aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.rename(target, aside / "old")
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(source, target)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    return target
