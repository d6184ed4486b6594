"""Overlays that hls4ml users already have: an hls4ml ``VivadoAccelerator`` build (``.bit``,
``.hwh``, the hls4ml project) turned into an ordinary psqs overlay package, unchanged, so that
psqs can emulate and benchmark it and the user's own scripts run against the emulated board.
"""
