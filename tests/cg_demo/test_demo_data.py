"""The demo's embedded dataset (reproducible, never built from the held-out photographs, hue turning on request)
and the training curves it plots."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cg_demo.data import HELD_OUT_PHOTOGRAPHS, make_demo_dataset, rotate_hue
from cg_demo.plan import FULL_PLAN, dataset_options

SMALL = {"size": 32, "train_per_domain": 3, "test_per_domain": 1, "seed": 5}


def files(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def test_the_same_options_make_the_same_bytes_and_recolour_zero_changes_nothing(tmp_path):
    first = files(make_demo_dataset(tmp_path / "a", **SMALL))
    assert len(first) == 2 * (3 + 1)
    assert files(make_demo_dataset(tmp_path / "b", **SMALL)) == first
    assert files(make_demo_dataset(tmp_path / "c", **SMALL, recolour=0.0)) == first
    assert files(make_demo_dataset(tmp_path / "d", **{**SMALL, "seed": 6})) != first


def test_recolour_turns_the_hues_of_the_crops_it_draws(tmp_path):
    plain = files(make_demo_dataset(tmp_path / "plain", **SMALL))
    turned = files(make_demo_dataset(tmp_path / "turned", **SMALL, recolour=1.0))
    assert plain.keys() == turned.keys() and plain != turned


def test_rotate_hue_keeps_value_and_saturation_and_turns_the_hue():
    red = Image.new("RGB", (4, 4), (200, 0, 0))
    assert np.array_equal(np.asarray(rotate_hue(red, 0.0)), np.asarray(red))
    assert np.array_equal(np.asarray(rotate_hue(red, 1.0)), np.asarray(red))  # a whole turn
    green = np.asarray(rotate_hue(red, 1 / 3)).astype(int)[0, 0]
    assert green.argmax() == 1 and green.max() == pytest.approx(200, abs=2) and green.min() <= 2


def test_held_out_photographs_are_refused_as_training_data(tmp_path):
    with pytest.raises(ValueError, match=HELD_OUT_PHOTOGRAPHS[0]):
        make_demo_dataset(tmp_path / "data", **SMALL, photographs=("astronaut", HELD_OUT_PHOTOGRAPHS[0]))
    assert not any((tmp_path / "data").rglob("*.png"))


@pytest.mark.parametrize("recolour", [-0.1, 1.5])
def test_recolour_must_be_a_probability(tmp_path, recolour):
    with pytest.raises(ValueError, match="probability"):
        make_demo_dataset(tmp_path / "data", **SMALL, recolour=recolour)


def test_dataset_options_are_the_arguments_of_make_demo_dataset(tmp_path):
    options = dataset_options(FULL_PLAN, seed=0)
    assert options["train_per_domain"] == FULL_PLAN.train_per_domain and options["size"] == FULL_PLAN.data_size
    make_demo_dataset(tmp_path / "data", **{**options, "train_per_domain": 1, "test_per_domain": 1})


def test_loss_curves_leave_out_a_loss_the_run_did_not_use(tmp_path):
    import json

    from cg_demo.runner import read_loss_curves

    log = tmp_path / "losses.jsonl"
    records = [{"kind": "steps", "step": step, "cycle": 1.0 / step, "identity": 0.0, "G_adv": 0.5, "D_A": 0.2,
                "D_B": 0.3} for step in (1, 2, 3)]
    log.write_text("".join(json.dumps(r) + "\n" for r in [*records, {"kind": "epoch", "step": 3, "cycle": 0.4}]))
    steps, curves = read_loss_curves(log)
    assert steps == [1, 2, 3] and list(curves) == ["cycle", "G_adv", "D_A", "D_B"]
    assert curves["cycle"] == [1.0, 0.5, pytest.approx(1 / 3)]
    assert read_loss_curves(tmp_path / "missing.jsonl") == ([], {})
