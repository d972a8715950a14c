"""``lipdub train-net``: trains the most present face, resumes, and reports where the checkpoint is."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace

import pytest

import engine.faces
import engine.regen
from engine.regen import RegenConfig, load_checkpoint


def test_train_net_command(talking: tuple[Path, SimpleNamespace], tiny_config: RegenConfig,
                           monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from engine.cli import train_net

    path, analysis = talking
    monkeypatch.setattr(engine.faces, "analyse", lambda *a, **k: analysis)
    monkeypatch.setattr(RegenConfig, "for_device", classmethod(lambda cls, device, **kw: tiny_config))
    sub = argparse.ArgumentParser().add_subparsers()
    train_net.add_parser(sub)
    args = sub.choices["train-net"].parse_args([str(path), "--device", "cpu", "--steps", "4"])
    assert args.func(args) == 0
    out = capsys.readouterr()
    assert "face 0 trained, 4 steps" in out.out and "regen: training" in out.err
    ckpt = Path(out.out.strip().rsplit("checkpoint ", 1)[1])
    assert load_checkpoint(ckpt)["done"]
    assert ckpt == engine.regen.checkpoint_path(path, 0, RegenConfig(**{**tiny_config.__dict__, "max_steps": 4}))
