"""Pipelines over whole videos: analyse, fit, render and the streamed export. Each takes a progress
callback and a cancel token, streams frames and holds bounded memory."""
