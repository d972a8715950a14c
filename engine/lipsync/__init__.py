"""The lip-sync engine: learn each speaker from the video itself, then regenerate the mouth for new audio.

- :mod:`engine.lipsync.geometry`: face-mesh index sets, canonical face frame, mouth opening
- :mod:`engine.lipsync.shape`: per-speaker PCA shape codes of mouth + jaw, zero-phase smoothing
- :mod:`engine.lipsync.model`: audio (Whisper-base features) -> shape codes: ridge, speaker-library
  prior, language-neutral fallback, rest in silences
- :mod:`engine.lipsync.synth`: retrieval synthesis from the speaker's own frames (Viterbi path,
  piecewise-affine warp)
- :mod:`engine.lipsync.metrics`: QUALITY.md's measures (sync meter, motion LMD, jitter, seams, PSNR/SSIM)

Whole-video orchestration (fit, plan, preview, streamed render, eval) is in :mod:`engine.pipeline`.
"""
