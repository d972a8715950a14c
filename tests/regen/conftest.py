from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from engine.regen import RegenConfig


@pytest.fixture(scope="session")
def talking(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SimpleNamespace]:
    """A 48-frame synthetic talking face (H.264) and its face analysis stand-in."""
    from tests.regen.synth_face import make_talking_video

    path = tmp_path_factory.mktemp("regen") / "talking.mp4"
    return path, make_talking_video(path)


@pytest.fixture
def tiny_config() -> RegenConfig:
    """The CPU code path with a tiny model: 32 px crops, 8 base channels, 2 levels."""
    return RegenConfig(crop_size=32, base_channels=8, depth=2, disc_channels=8, batch_pairs=2, max_steps=60,
                       adv_start=20, eval_every=20, checkpoint_every=20, val_pairs=4, patience=100)


@pytest.fixture(autouse=True, scope="session")
def _capped_threads() -> None:
    """torch at full thread count collapses on a shared 2-core machine: use the engine's cap."""
    from engine.runtime.compute import configure_threads

    configure_threads()
