"""psqs.hls.rtl: cycle-accurate RTL of the quantized network, without vendor tools.

The third rung of the verification ladder and the timing truth of the board emulator: da4ml turns
the QKeras network into pipelined shift-and-add Verilog with the hls4ml project's fixed-point
semantics, psqs wraps it in an AXI4-Stream top that speaks the HLS IP's I/O contract, Verilator
simulates it cycle by cycle, and yosys estimates what it costs on the board's FPGA family.

Layout of the output directory (``psqs rtl``, :func:`psqs.hls.rtl.stage.run`)::

    manifest.json      I/O contract, IP identity and files, latency/II (stated and measured), da4ml
                       cost, clock, stage depth, resources, the ladder's verdicts
    ip/component.xml   IP-XACT description: the Vivado "RTL IP" of the model (VLNV psqs.org:psqs:<top>:1.0)
    ip/xgui/           its (parameterless) customization page
    ip/hdl/            the Verilog: da4ml's primitives and pipelined network, the AXI-stream top
    sim/libpsqs_rtl.so Verilated model with the C ABI of the HLS C simulation plus psqs_cycles()
    sim/psqs_rtl_driver.cpp, sim/lint.vlt   its C entry points and Verilator lint waivers (to rebuild it)
    verify.json, verify/*.npy   the ladder: earlier rungs, the da4ml trace, the RTL under stalls
    resources.json     yosys synth_xilinx cell counts and the fit on the board's part
    test_vectors.npz   raw features, labels, reference logits, ``csim_logits`` = the RTL's logits
"""
