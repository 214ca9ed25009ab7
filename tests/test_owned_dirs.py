"""owned_dirs: acbench deletes or replaces a folder only when it made it (marker) inside a root."""

from __future__ import annotations

import pytest

from lm_eval_acbench.errors import UserError
from lm_eval_acbench.owned_dirs import (
    MARKER, is_owned, make_owned_dir, remove_owned_dir, replace_owned_dir,
)


def user_folder(path):
    path.mkdir(parents=True)
    (path / "thesis.txt").write_text("three years of work")
    return path


def test_a_made_folder_is_marked_before_it_has_its_name_and_can_be_removed(tmp_path):
    made = make_owned_dir(tmp_path / "a" / "b", root=tmp_path)
    assert is_owned(made) and (made / MARKER).is_file()
    assert not [p for p in (tmp_path / "a").iterdir() if p.name != "b"]  # no temp folder left
    (made / "x.txt").write_text("ours")
    assert make_owned_dir(made, root=tmp_path) == made and (made / "x.txt").exists()
    remove_owned_dir(made, root=tmp_path)
    assert not made.exists()
    remove_owned_dir(made, root=tmp_path)  # missing: nothing to do


def test_a_users_folder_is_never_removed_or_written_into(tmp_path):
    theirs = user_folder(tmp_path / "theirs")
    with pytest.raises(UserError, match="refusing to delete .*did not make it") as err:
        remove_owned_dir(theirs, root=tmp_path)
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="refusing to write into"):
        make_owned_dir(theirs, root=tmp_path)
    assert (theirs / "thesis.txt").read_text() == "three years of work"
    assert not (theirs / MARKER).exists()


def test_an_empty_folder_is_claimed_and_a_file_is_refused(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert is_owned(make_owned_dir(empty, root=tmp_path))
    a_file = tmp_path / "f"
    a_file.write_text("keep")
    with pytest.raises(UserError):
        make_owned_dir(a_file, root=tmp_path)
    with pytest.raises(UserError):
        remove_owned_dir(a_file, root=tmp_path)
    assert a_file.read_text() == "keep"


def test_marked_folders_outside_the_root_and_symlinks_are_refused(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    elsewhere = make_owned_dir(tmp_path / "elsewhere", root=tmp_path)
    (elsewhere / "data.txt").write_text("x")
    for path in (elsewhere, root / ".." / "elsewhere", root, tmp_path):
        with pytest.raises(UserError, match="not inside"):
            remove_owned_dir(path, root=root)
    link = root / "link"
    link.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(UserError, match="refusing to delete"):
        remove_owned_dir(link, root=root)
    escaping = root / "via"
    escaping.symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(UserError, match="not inside"):
        remove_owned_dir(escaping / "elsewhere", root=root)
    assert (elsewhere / "data.txt").exists()


def test_replace_swaps_in_a_finished_folder_only_over_one_of_ours(tmp_path):
    final = make_owned_dir(tmp_path / "final", root=tmp_path)
    (final / "old.txt").write_text("old")
    staging = make_owned_dir(tmp_path / ".staging", root=tmp_path)
    (staging / "new.txt").write_text("new")
    replace_owned_dir(staging, final, root=tmp_path)
    assert sorted(p.name for p in final.iterdir()) == [MARKER, "new.txt"]
    assert not staging.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final"]  # nothing set aside remains

    theirs = user_folder(tmp_path / "theirs")
    staging = make_owned_dir(tmp_path / ".staging2", root=tmp_path)
    with pytest.raises(UserError, match="refusing to replace"):
        replace_owned_dir(staging, theirs, root=tmp_path)
    assert sorted(p.name for p in theirs.iterdir()) == ["thesis.txt"]
    assert staging.exists()

    with pytest.raises(UserError, match="refusing to publish"):  # staging must be ours as well
        replace_owned_dir(theirs, tmp_path / "somewhere", root=tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    replace_owned_dir(staging, empty, root=tmp_path)
    assert is_owned(empty)
