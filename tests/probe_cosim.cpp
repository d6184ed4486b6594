// Cycle driver of the Verilated stream_probe for tests/test_probe_cosim.py (never synthesized).
//
// Why C++ rather than cocotb: the co-simulation plays over a thousand random traces, about half a
// million cycles; a Python callback per cycle would take minutes, this loop takes well under a
// second. It only drives ports and collects read data; every judgement is made in Python.
//
// The program is one 32-bit word per clock cycle; cycle i is the i-th rising edge of aclk:
//   bits 0-5   s_axis_in_tvalid, m_axis_in_tready, s_axis_in_tlast,
//              s_axis_out_tvalid, m_axis_out_tready, s_axis_out_tlast (held over the edge);
//   bits 8-9   AXI4-Lite action whose handshake is at this edge: 0 none, 1 read, 2 write,
//              3 reset (aresetn low at this edge);
//   bits 16-22 the read or write address; bits 24-27 the write data (WSTRB all ones).
// RREADY and BREADY are always high. A read's RDATA (registered at its handshake edge) is
// appended to `reads`. An action whose handshake does not happen at its edge is a harness error:
// the run stops and returns -1 - (that cycle).
#include <cstddef>
#include <cstdint>
#include <memory>

#include "verilated.h"
#include "${vtop}.h"

#define PSQS_API extern "C" __attribute__((visibility("default")))

PSQS_API long long psqs_probe_run(const uint32_t *program, size_t cycles, uint32_t *reads, size_t max_reads) {
    auto context = std::make_unique<VerilatedContext>();
    auto top = std::make_unique<${vtop}>(context.get());
    size_t n_reads = 0;
    top->aclk = 0;
    top->aresetn = 0;
    top->s_axi_ctrl_rready = 1;
    top->s_axi_ctrl_bready = 1;
    top->s_axi_ctrl_wstrb = 0xF;
    top->eval();
    for (size_t i = 0; i < cycles; i++) {
        const uint32_t w = program[i];
        const unsigned action = (w >> 8) & 3, addr = (w >> 16) & 0x7F;
        top->s_axis_in_tvalid = w & 1;
        top->m_axis_in_tready = (w >> 1) & 1;
        top->s_axis_in_tlast = (w >> 2) & 1;
        top->s_axis_in_tdata = static_cast<uint32_t>(i);
        top->s_axis_in_tkeep = 0xF;
        top->s_axis_out_tvalid = (w >> 3) & 1;
        top->m_axis_out_tready = (w >> 4) & 1;
        top->s_axis_out_tlast = (w >> 5) & 1;
        top->s_axis_out_tdata = static_cast<uint32_t>(~i);
        top->s_axis_out_tkeep = 0xF;
        top->aresetn = action != 3;
        top->s_axi_ctrl_arvalid = action == 1;
        top->s_axi_ctrl_araddr = addr;
        top->s_axi_ctrl_awvalid = top->s_axi_ctrl_wvalid = action == 2;
        top->s_axi_ctrl_awaddr = addr;
        top->s_axi_ctrl_wdata = (w >> 24) & 0xF;
        top->eval();
        if ((action == 1 && !top->s_axi_ctrl_arready) || (action == 2 && !top->s_axi_ctrl_awready))
            return -1 - static_cast<long long>(i);
        top->aclk = 1;
        top->eval();
        if (action == 1) {
            if (n_reads == max_reads) return -1 - static_cast<long long>(i);
            reads[n_reads++] = top->s_axi_ctrl_rdata;
        }
        top->aclk = 0;
        top->eval();
    }
    top->final();
    return static_cast<long long>(n_reads);
}
