"""Nothing lands next to the notebooks but the notebooks: fastai's model folder is a scratch folder.

`lr_find` saves a copy of the model under `learn.path / learn.model_dir` and deletes the file, but
not the folder. With fastai's default path ('.') that left an empty `models/` beside 02, which then
travelled with the submission. `ck.kit_dls` gives its loaders (and so every Learner on them) the
path `ck.model_home()`, a folder under the system's temporary directory.
"""

from __future__ import annotations

import collabkit.nb as ck


def test_lr_find_on_the_kits_loaders_leaves_the_notebook_folder_empty(tmp_path, monkeypatch):
    from fastai.collab import collab_learner

    monkeypatch.chdir(tmp_path)
    dls = ck.kit_dls(bs=1024)
    learn = collab_learner(dls, n_factors=8, y_range=(0, 5.5))
    with learn.no_bar(), learn.no_logging():
        learn.lr_find(num_it=5, show_plot=False)
    assert list(tmp_path.iterdir()) == [], f"lr_find left {[p.name for p in tmp_path.iterdir()]} next to the notebook"
    assert learn.path == ck.model_home() and (ck.model_home() / "models").is_dir()


def test_the_model_home_is_outside_the_notebooks_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    home = ck.model_home()
    assert home.is_dir() and tmp_path not in home.parents and home != tmp_path
