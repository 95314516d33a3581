import importlib.util
import json

import pytest

from tests.conftest import ROOT

CFG = ROOT / "recipes/configs/multiomic/sanity.yaml"


def _recipe():
    spec = importlib.util.spec_from_file_location("pretrain_multiomic", ROOT / "recipes/pretrain_multiomic.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def recipe(shared, monkeypatch):
    monkeypatch.setenv("BIOSEQ_SHARED", str(shared))
    return _recipe()


def test_sanity_config_runs_and_checkpoints(recipe, tmp_path):
    m = recipe.main([str(CFG), f"output_dir={tmp_path}"])
    assert m["step"] == 10 and m["loss"] < 3.75  # uniform over 47 tokens is ln 47 = 3.85: it learned something
    last = tmp_path / "last"
    assert {p.name for p in last.iterdir()} >= {"config.json", "model.safetensors", "optimizer.safetensors",
                                                 "tokenizer.json", "trainer_state.json"}
    from bioseq.models import MaskedLM, load_pretrained

    model = load_pretrained(last)
    assert isinstance(model, MaskedLM) and model.backbone.config.bidirectional
    assert json.loads((last / "trainer_state.json").read_text())["step"] == 10


def test_interrupted_run_resumes_to_the_same_result(recipe, tmp_path):
    common = [str(CFG), "train.save_every=5", "train.eval_every=10"]
    full = recipe.main(common + [f"output_dir={tmp_path / 'a'}"])
    recipe.main(common + [f"output_dir={tmp_path / 'b'}", "train.stop_at=5"])
    resumed = recipe.main(common + [f"output_dir={tmp_path / 'b'}", "train.resume=true"])
    assert resumed["step"] == full["step"] == 10
    assert resumed["loss"] == pytest.approx(full["loss"], rel=1e-4)
    assert resumed["train_loss"] == pytest.approx(full["train_loss"], rel=1e-4)
