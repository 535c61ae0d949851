"""Checkpoint loading: every format in the wild round-trips, and every bad file is a one-line typed error."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from cg_export.errors import ArchitectureError, CheckpointError
from cg_export.models import create_generator, load_generator, save_generator
from cg_export.models.checkpoint import FORMAT, SOURCE_JUNYANZ, SOURCE_OURS, SOURCE_PYTORCH_GAN, infer_config
from tests.conftest import DATA, TINY, make_generator

PEER_KEYS = DATA / "peer_keys"


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_our_format_round_trips_with_meta(checkpoints):
    loaded = load_generator(checkpoints["ours.pt"])
    assert loaded.source_format == SOURCE_OURS
    assert loaded.config["name"] == "resnet" and loaded.config["ngf"] == 8 and loaded.config["n_blocks"] == 2
    assert loaded.meta == {"epoch": 3, "step": 42}
    assert _same_weights(loaded.model, make_generator("resnet_tiny"))
    assert len(loaded.sha256) == 64


def test_our_format_is_loadable_with_weights_only(checkpoints):
    payload = torch.load(checkpoints["ours.pt"], weights_only=True)
    assert payload["format"] == FORMAT and payload["version"] == 1
    assert set(payload) == {"format", "version", "config", "state_dict", "meta"}


@pytest.mark.parametrize(
    "file, expected, source",
    [
        ("latest_net_G_A.pth", {"name": "resnet", "n_blocks": 2, "ngf": 4, "dropout": False, "upsample": "transpose"},
         SOURCE_JUNYANZ),
        ("5_net_G_B.pth", {"name": "resnet", "n_blocks": 2, "dropout": True, "upsample": "transpose"}, SOURCE_JUNYANZ),
        ("legacy_net_G_A.pth", {"name": "resnet", "n_blocks": 2, "norm": "instance"}, SOURCE_JUNYANZ),
        ("dataparallel_net_G.pth", {"name": "resnet", "n_blocks": 2}, SOURCE_JUNYANZ),
        ("G_AB_7.pth", {"name": "resnet", "n_blocks": 2, "upsample": "nearest"}, SOURCE_PYTORCH_GAN),
        ("unet128_net_G.pth", {"name": "unet", "num_downs": 7, "ngf": 4, "norm": "instance"}, SOURCE_JUNYANZ),
        ("unet256_net_G.pth", {"name": "unet", "num_downs": 8, "ngf": 4, "norm": "batch"}, SOURCE_JUNYANZ),
    ],
)
def test_peer_formats_are_detected_without_flags(checkpoints, file, expected, source):
    loaded = load_generator(checkpoints[file])
    assert loaded.source_format == source
    assert expected.items() <= loaded.config.items()
    # The rebuilt network computes: a full forward pass at the architecture's size multiple.
    size = max(loaded.model.size_multiple, 16)
    with torch.inference_mode():
        assert loaded.model(torch.zeros(1, 3, size, size)).shape == (1, 3, size, size)


def test_peer_weights_load_exactly(checkpoints):
    original = torch.load(checkpoints["G_AB_7.pth"], weights_only=True)
    loaded = load_generator(checkpoints["G_AB_7.pth"]).model.state_dict()
    assert all(torch.equal(original[k], loaded[k]) for k in original)


def test_legacy_running_stats_and_prefixes_are_cleaned_and_reported(checkpoints):
    legacy = load_generator(checkpoints["legacy_net_G_A.pth"])
    assert any("running-statistics" in note for note in legacy.notes)
    prefixed = load_generator(checkpoints["dataparallel_net_G.pth"])
    assert any("module." in note for note in prefixed.notes)
    assert _same_weights(legacy.model, load_generator(checkpoints["latest_net_G_A.pth"]).model)


def test_batchnorm_running_stats_are_kept(checkpoints):
    state = torch.load(checkpoints["unet256_net_G.pth"], weights_only=True)
    model = load_generator(checkpoints["unet256_net_G.pth"]).model
    key = next(k for k in state if k.endswith("running_var"))
    assert torch.equal(model.state_dict()[key], state[key])


@pytest.mark.parametrize("golden", sorted(PEER_KEYS.glob("*.txt")) if PEER_KEYS.is_dir() else [], ids=lambda p: p.stem)
def test_key_names_and_shapes_match_the_peer_implementations(golden):
    """Golden key lists were dumped from the peers' own model classes (see the header line of each file)."""
    lines = [line for line in golden.read_text().splitlines() if line and not line.startswith("#")]
    peer = {k: tuple(int(d) for d in s.split(",") if d) for k, s in (line.split("\t") for line in lines)}
    config, _ = infer_config({k: torch.zeros(shape) for k, shape in peer.items()})
    ours = {k: tuple(v.shape) for k, v in create_generator(**config).state_dict().items()}
    assert ours == peer


def test_peer_key_lists_are_present():
    assert len(list(PEER_KEYS.glob("*.txt"))) == 5


def test_forced_arch_overrides_detection(checkpoints):
    loaded = load_generator(checkpoints["G_AB_7.pth"], arch="resnet_upsample")
    assert loaded.config["upsample"] == "nearest"
    with pytest.raises(ArchitectureError, match="do not fit resnet_9blocks"):
        load_generator(checkpoints["G_AB_7.pth"], arch="resnet_9blocks")


def test_save_is_atomic_and_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "g.pt"
    save_generator(make_generator("resnet_tiny"), path)
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", fail)
    with pytest.raises(OSError):
        save_generator(make_generator("resnet_tiny", seed=1), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["g.pt"]


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch /tmp/cg_export_pwned",))


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda t: _write(t, "evil.pth", pickle.dumps(_Exploit())), "could run code"),
        (lambda t: t / "missing.pth", "no such file"),
        (lambda t: t, "is a folder"),
        (lambda t: _write(t, "empty.pth", b""), "empty"),
        (lambda t: _write(t, "notes.pth", b"epoch 200, lr 2e-4\n"), "not a PyTorch checkpoint"),
    ],
    ids=["hostile-pickle", "missing", "folder", "empty", "text"],
)
def test_bad_files_are_one_line_errors(tmp_path, make, message):
    with pytest.raises(CheckpointError, match=message) as info:
        load_generator(make(tmp_path))
    assert "\n" not in str(info.value)
    assert not Path("/tmp/cg_export_pwned").exists()


def test_hostile_torch_save_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": _Exploit()}, path)
    with pytest.raises(CheckpointError, match=r"system.*could run code"):
        load_generator(path)


def test_truncated_checkpoint(checkpoints, tmp_path):
    data = checkpoints["latest_net_G_A.pth"].read_bytes()
    with pytest.raises(CheckpointError, match="truncated"):
        load_generator(_write(tmp_path, "cut.pth", data[: len(data) // 2]))


def test_discriminator_is_named_as_such(tmp_path):
    # A 70x70 PatchGAN: 4x4 convs ending in one output channel.
    disc = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 4, 2, 1), torch.nn.LeakyReLU(0.2), torch.nn.Conv2d(8, 16, 4, 2, 1),
        torch.nn.InstanceNorm2d(16), torch.nn.LeakyReLU(0.2), torch.nn.Conv2d(16, 1, 4, 1, 1),
    )
    path = tmp_path / "latest_net_D_A.pth"
    torch.save({f"model.{k}": v for k, v in disc.state_dict().items()}, path)
    with pytest.raises(CheckpointError, match="discriminator"):
        load_generator(path)


def test_other_network_is_refused(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(torch.nn.Linear(4, 2).state_dict(), path)
    with pytest.raises(CheckpointError, match="not a generator of a family cg-export supports") as info:
        load_generator(path)
    assert "--arch" not in str(info.value)


def test_damaged_weights_do_not_fit(checkpoints, tmp_path):
    state = torch.load(checkpoints["latest_net_G_A.pth"], weights_only=True)
    state["model.4.weight"] = state["model.4.weight"][:, :1]
    path = tmp_path / "bad_net_G_A.pth"
    torch.save(state, path)
    with pytest.raises(ArchitectureError, match="shape mismatch model.4.weight"):
        load_generator(path)


def test_newer_format_version_asks_for_an_upgrade(tmp_path):
    model = make_generator("resnet", **TINY)
    path = tmp_path / "future.pt"
    torch.save({"format": FORMAT, "version": 99, "config": model.config, "state_dict": model.state_dict()}, path)
    with pytest.raises(CheckpointError, match="upgrade cg-export"):
        load_generator(path)


def test_training_state_wrapper_points_to_the_generator_file(tmp_path):
    path = tmp_path / "state.pt"
    torch.save({"epoch": 3, "optimizer": {"lr": torch.tensor(1.0)}}, path)
    with pytest.raises(CheckpointError, match="generator's own file"):
        load_generator(path)
