"""psqs.host: the runtime that runs on the board (or drives one through PYNQ.remote).

It imports only numpy, pynq and the standard library, and nothing from the other psqs stages,
because a PYNQ image has no TensorFlow or hls4ml.
"""
