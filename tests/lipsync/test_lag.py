"""The audio-to-mouth lag: found from the band energy alone, or from a prior of other speakers."""

from __future__ import annotations

import numpy as np

from engine.lipsync.model import fit_prior
from engine.pipeline.fit import estimate_lag, lag_rows


def _smooth_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    x = rng.normal(size=n + 8)
    return np.convolve(x, np.ones(5) / 5, mode="same")[4 : 4 + n]


def test_lag_rows_reads_later_audio_and_holds_the_ends() -> None:
    assert lag_rows(5, 2).tolist() == [2, 3, 4, 4, 4]
    assert lag_rows(5, -1).tolist() == [0, 0, 1, 2, 3]
    assert lag_rows(5, 0).tolist() == [0, 1, 2, 3, 4]


def test_energy_lag_finds_a_mouth_that_leads_the_sound() -> None:
    rng = np.random.default_rng(3)
    n, lead = 400, 2
    sound = _smooth_noise(n, rng)
    opening = np.empty(n)
    opening[: n - lead] = sound[lead:]  # the mouth at t matches the sound at t + lead
    opening[n - lead :] = sound[-1]
    frames = np.arange(20, 380)
    design = np.zeros((n, 3), np.float32)
    assert estimate_lag(design, sound, frames, opening[frames], fps=25.0) == lead
    # The mouth trailing the sound by 2 frames (energy at t is the mouth at t + 2): a negative lag.
    early = np.roll(sound, -2)
    assert estimate_lag(design, early, frames, sound[frames], fps=25.0) == -2


def test_prior_lag_uses_the_prior_prediction_not_the_energy() -> None:
    rng = np.random.default_rng(4)
    n = 600
    feats = rng.normal(size=(n, 6)).astype(np.float32)
    weights = rng.normal(size=6)
    # Other speakers: opening is a fixed function of their features at the same frame.
    entries = []
    for s in range(3):
        x = rng.normal(size=(300, 6)).astype(np.float32)
        y = x @ weights
        entries.append((f"spk{s}", x, (y - y.mean()) / y.std()))
    prior = fit_prior(entries)
    assert prior is not None
    truth = feats @ weights
    # This speaker's mouth leads their audio by 3 frames; the energy says nothing.
    opening = truth[lag_rows(n, 3)]
    frames = np.arange(30, 570)
    lag = estimate_lag(feats, np.zeros(n), frames, opening[frames], fps=25.0, prior=prior)
    assert lag == 3


def test_no_signal_or_too_few_frames_gives_no_lag() -> None:
    design = np.zeros((50, 2), np.float32)
    assert estimate_lag(design, np.zeros(50), np.arange(10), np.linspace(0, 1, 10), fps=25.0) == 0
    assert estimate_lag(design, np.ones(50), np.arange(40), np.zeros(40), fps=25.0) == 0


def test_eval_library_leaves_the_evaluated_clip_out_of_its_prior_and_of_every_lag_choice() -> None:
    import engine.pipeline.evaluate as ev

    rng = np.random.default_rng(5)
    weights = rng.normal(size=4)
    entries = []
    for k, lead in enumerate((0, 1, 2, -1)):
        x = rng.normal(size=(200, 4)).astype(np.float32)
        truth = x @ weights
        opening = truth[lag_rows(200, lead)]
        frames = np.arange(10, 190)
        entries.append(ev.LibraryEntry(f"clip{k}", x, truth, frames, opening[frames], 25.0))
    lib = ev.LeaveOneOutLibrary(entries)
    used: list[set[str]] = []
    real_fit = ev.fit_prior

    def spy(rows, *a, **kw):  # type: ignore[no-untyped-def]
        used.append({name for name, _, _ in rows})
        return real_fit(rows, *a, **kw)

    ev.fit_prior = spy  # type: ignore[assignment]
    try:
        prior = lib.prior_for("clip2")
    finally:
        ev.fit_prior = real_fit  # type: ignore[assignment]
    assert prior is not None and "clip2" not in prior.speakers
    assert used and all("clip2" not in names for names in used)
    # Each entry went in at its own lead, found without the evaluated clip.
    assert lib.energy_lag == {"clip0": 0, "clip1": 1, "clip2": 2, "clip3": -1}


def test_speaker_library_skips_entries_made_with_other_audio_features(tmp_path) -> None:
    """A library entry keeps the feature format it was made with; after a change of audio features
    the old entries (another space) must not enter the prior."""
    from engine.pipeline.fit import load_prior, save_to_library

    rng = np.random.default_rng(6)
    for k in range(3):
        x = rng.normal(size=(60, 5)).astype(np.float32)
        save_to_library(f"spk{k}", x, x[:, 0], directory=tmp_path)
    stale = rng.normal(size=(60, 5)).astype(np.float16)
    np.savez(tmp_path / "old.npz", x=stale, y=stale[:, 0].astype(np.float32))
    prior = load_prior(directory=tmp_path)
    assert prior is not None and sorted(prior.speakers) == ["spk0", "spk1", "spk2"]
    assert sorted(load_prior(exclude={"spk1"}, directory=tmp_path).speakers) == ["spk0", "spk2"]  # type: ignore[union-attr]


def test_a_long_speakers_library_entry_is_thinned_to_what_a_prior_reads(tmp_path) -> None:
    """A long video's speaker is stored as at most LIBRARY_MAX_ROWS rows spread over its speech, and
    entries are thinned on loading to the rows the prior takes: the prior is the one fitted from the
    stored entries whole."""
    from engine.pipeline import fit as F

    rng = np.random.default_rng(7)
    stored = {}
    for k, n in enumerate((F.LIBRARY_MAX_ROWS * 3 + 17, 400, 90)):
        x = rng.normal(size=(n, 6)).astype(np.float32)
        opening = x[:, 0] + 0.1 * rng.normal(size=n)
        F.save_to_library(f"spk{k}", x, opening, directory=tmp_path)
        with np.load(tmp_path / f"spk{k}.npz") as z:
            stored[f"spk{k}"] = (z["x"].astype(np.float32), z["y"])
        keep = F.spread_rows(n, F.LIBRARY_MAX_ROWS)
        assert len(stored[f"spk{k}"][0]) == min(n, F.LIBRARY_MAX_ROWS)
        np.testing.assert_array_equal(stored[f"spk{k}"][0], x[keep].astype(np.float16).astype(np.float32))
    prior = F.load_prior(directory=tmp_path)
    whole = fit_prior([(k, x, y) for k, (x, y) in sorted(stored.items())], F.PRIOR_ROWS)
    assert prior is not None and whole is not None and prior.speakers == whole.speakers
    probe = rng.normal(size=(50, 6))
    np.testing.assert_allclose(prior.predict(probe), whole.predict(probe), atol=1e-9)
