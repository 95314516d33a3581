import pytest

from bioseq.utils.recipe_config import RecipeConfigError, load_recipe_config


def test_overrides_and_defaults(tmp_path):
    (tmp_path / "base.yaml").write_text("train:\n  lr: 0.1\n  steps: 10\nmodel:\n  size: a\n")
    (tmp_path / "child.yaml").write_text("defaults: base.yaml\ntrain:\n  steps: 20\n")
    cfg = load_recipe_config(tmp_path / "child.yaml", ["train.lr=1e-3", "model.size=hyena-small", "+train.new=[1, 2]"])
    assert cfg == {"train": {"lr": 1e-3, "steps": 20, "new": [1, 2]}, "model": {"size": "hyena-small"}}


def test_typos_are_errors(tmp_path):
    (tmp_path / "c.yaml").write_text("train:\n  lr: 0.1\n")
    with pytest.raises(RecipeConfigError, match="no key 'train.lrr'"):
        load_recipe_config(tmp_path / "c.yaml", ["train.lrr=1"])
    with pytest.raises(RecipeConfigError, match="key=value"):
        load_recipe_config(tmp_path / "c.yaml", ["train.lr"])
    with pytest.raises(RecipeConfigError, match="does not exist"):
        load_recipe_config(tmp_path / "missing.yaml")
