"""psqs.hls: stage 2, hls4ml conversion of a model directory into a bit-exact HLS project."""
