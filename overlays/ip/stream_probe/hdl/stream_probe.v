// stream_probe: cycle-accurate latency / throughput probe on the model's two AXI streams.
//
// Why: on a board the host cannot time the neural-network IP honestly (Python, DMA set-up and,
// remotely, the network sit in between). This IP sits on the input stream (DMA MM2S -> model)
// and on the output stream (model -> DMA S2MM) and counts aclk cycles in the fabric.
//
// Data path: ZERO added latency. Each path is plain wires (TDATA, TKEEP, TLAST, TVALID forward,
// TREADY backward); the probe only observes handshakes (TVALID & TREADY), so it can never drop,
// duplicate or reorder a beat and passes backpressure through unchanged.
//
// Measurement (aclk cycles):
//   - CYCLES (64 bits) runs always; IN_BEATS / OUT_BEATS (64 bits) count handshakes while
//     CTRL.ENABLE = 1.
//   - A transfer is delimited by TLAST. The first beat of an input transfer starts an age counter
//     in the next free one of FIFO_DEPTH slots (transfers may overlap: the DMA can start input
//     k+1 before output k has finished). At the first beat of an output transfer the age of the
//     oldest slot is LAST_LATENCY; at its TLAST beat it is LAST_TRANSFER_TIME, the slot is freed
//     and TRANSFERS (64 bits) increments. MIN/MAX_LATENCY follow LAST_LATENCY one cycle later.
//     An output beat in the same cycle as the matching (only pending) input start measures 0.
//     Age counters rather than stored timestamps: no timestamp memory and no 64-bit subtractor.
//     The latency path is LATENCY_BITS (48) wide: 10.9 days at 300 MHz.
//   - A start arriving with FIFO_DEPTH starts pending is dropped: STATUS.OVERFLOW (sticky).
//     An output transfer with no pending start is not measured: STATUS.UNMATCHED (sticky).
//   - CTRL.CLEAR zeroes all of the above and the TLAST framing, one cycle after its write.
//
// Register interface: AXI4-Lite slave s_axi_ctrl, 32-bit data; offsets, reset values and fields
// come from stream_probe_regs.vh, generated from psqs.host.stream_probe_regs (see REGISTERS.md).
// 32-bit registers are in the lower half of the address space, 64-bit ones in the upper half,
// so the read multiplexer is indexed directly by address bits. Reading the LO word of a 64-bit
// register latches its HI word, so LO-then-HI gives one consistent sample.
//
// One clock (aclk), synchronous active-low reset (aresetn). Verilog-2001, no vendor primitives.
`timescale 1ns / 1ps
`default_nettype none
`include "stream_probe_regs.vh"

module stream_probe #(
    parameter integer DATA_WIDTH_IN  = `STREAM_PROBE_DEFAULT_DATA_WIDTH_IN,
    parameter integer DATA_WIDTH_OUT = `STREAM_PROBE_DEFAULT_DATA_WIDTH_OUT,
    parameter integer FIFO_DEPTH     = `STREAM_PROBE_DEFAULT_FIFO_DEPTH
) (
    input  wire                                aclk,
    input  wire                                aresetn,

    // input path: DMA MM2S -> probe -> model
    input  wire [DATA_WIDTH_IN-1:0]            s_axis_in_tdata,
    input  wire [DATA_WIDTH_IN/8-1:0]          s_axis_in_tkeep,
    input  wire                                s_axis_in_tlast,
    input  wire                                s_axis_in_tvalid,
    output wire                                s_axis_in_tready,
    output wire [DATA_WIDTH_IN-1:0]            m_axis_in_tdata,
    output wire [DATA_WIDTH_IN/8-1:0]          m_axis_in_tkeep,
    output wire                                m_axis_in_tlast,
    output wire                                m_axis_in_tvalid,
    input  wire                                m_axis_in_tready,

    // output path: model -> probe -> DMA S2MM
    input  wire [DATA_WIDTH_OUT-1:0]           s_axis_out_tdata,
    input  wire [DATA_WIDTH_OUT/8-1:0]         s_axis_out_tkeep,
    input  wire                                s_axis_out_tlast,
    input  wire                                s_axis_out_tvalid,
    output wire                                s_axis_out_tready,
    output wire [DATA_WIDTH_OUT-1:0]           m_axis_out_tdata,
    output wire [DATA_WIDTH_OUT/8-1:0]         m_axis_out_tkeep,
    output wire                                m_axis_out_tlast,
    output wire                                m_axis_out_tvalid,
    input  wire                                m_axis_out_tready,

    // AXI4-Lite register slave
    input  wire [`STREAM_PROBE_ADDR_WIDTH-1:0] s_axi_ctrl_awaddr,
    input  wire                                s_axi_ctrl_awvalid,
    output wire                                s_axi_ctrl_awready,
    input  wire [31:0]                         s_axi_ctrl_wdata,
    input  wire [3:0]                          s_axi_ctrl_wstrb,
    input  wire                                s_axi_ctrl_wvalid,
    output wire                                s_axi_ctrl_wready,
    output wire [1:0]                          s_axi_ctrl_bresp,
    output wire                                s_axi_ctrl_bvalid,
    input  wire                                s_axi_ctrl_bready,
    input  wire [`STREAM_PROBE_ADDR_WIDTH-1:0] s_axi_ctrl_araddr,
    input  wire                                s_axi_ctrl_arvalid,
    output wire                                s_axi_ctrl_arready,
    output wire [31:0]                         s_axi_ctrl_rdata,
    output wire [1:0]                          s_axi_ctrl_rresp,
    output wire                                s_axi_ctrl_rvalid,
    input  wire                                s_axi_ctrl_rready
);

    localparam integer AW = `STREAM_PROBE_ADDR_WIDTH;
    localparam integer LW = `STREAM_PROBE_LATENCY_BITS;
    localparam integer PW = (FIFO_DEPTH > 1) ? $clog2(FIFO_DEPTH) : 1;  // slot pointer bits
    localparam [63:0]  MIN_LATENCY_RESET = `STREAM_PROBE_MIN_LATENCY_RESET;
    localparam [31:0]  CONFIG_DEPTH      = FIFO_DEPTH;
    localparam [31:0]  CONFIG_BYTES_IN   = DATA_WIDTH_IN / 8;
    localparam [31:0]  CONFIG_BYTES_OUT  = DATA_WIDTH_OUT / 8;

    // ------------------------------------------------------------------ pass-through (wires)
    assign m_axis_in_tdata   = s_axis_in_tdata;
    assign m_axis_in_tkeep   = s_axis_in_tkeep;
    assign m_axis_in_tlast   = s_axis_in_tlast;
    assign m_axis_in_tvalid  = s_axis_in_tvalid;
    assign s_axis_in_tready  = m_axis_in_tready;

    assign m_axis_out_tdata  = s_axis_out_tdata;
    assign m_axis_out_tkeep  = s_axis_out_tkeep;
    assign m_axis_out_tlast  = s_axis_out_tlast;
    assign m_axis_out_tvalid = s_axis_out_tvalid;
    assign s_axis_out_tready = m_axis_out_tready;

    // ------------------------------------------------------------------ AXI4-Lite handshakes
    // Write: address and data are taken together in one cycle (READY may depend on VALID).
    // Nothing is accepted until the cycle after reset, so no handshake can be lost in reset.
    reg  live_q;
    reg  bvalid_q;
    wire wr_fire = s_axi_ctrl_awvalid & s_axi_ctrl_wvalid & ~bvalid_q & live_q;
    wire [AW-3:0] wr_word = s_axi_ctrl_awaddr[AW-1:2];
    assign s_axi_ctrl_awready = wr_fire;
    assign s_axi_ctrl_wready  = wr_fire;
    assign s_axi_ctrl_bvalid  = bvalid_q;
    assign s_axi_ctrl_bresp   = 2'b00;

    // Read: one outstanding read; the data is registered at the address handshake.
    reg        rvalid_q;
    reg [31:0] rdata_q;
    wire rd_fire = s_axi_ctrl_arvalid & ~rvalid_q & live_q;
    wire [AW-3:0] rd_word = s_axi_ctrl_araddr[AW-1:2];
    wire          rd_wide = s_axi_ctrl_araddr[AW-1];   // upper half: 64-bit registers
    wire [AW-5:0] rd_widx = s_axi_ctrl_araddr[AW-2:3]; // which 64-bit register
    wire          rd_hi   = s_axi_ctrl_araddr[2];      // its HI word
    assign s_axi_ctrl_arready = ~rvalid_q & live_q;
    assign s_axi_ctrl_rvalid  = rvalid_q;
    assign s_axi_ctrl_rdata   = rdata_q;
    assign s_axi_ctrl_rresp   = 2'b00;

    // Bits the register map does not decode (sub-word address, unused byte lanes and bits).
    wire unused_axil_bits = &{1'b0, s_axi_ctrl_awaddr[1:0], s_axi_ctrl_araddr[1:0],
                              s_axi_ctrl_wstrb[3:1], s_axi_ctrl_wdata};

    always @(posedge aclk) begin
        live_q <= aresetn;
        if (!aresetn) begin
            bvalid_q <= 1'b0;
            rvalid_q <= 1'b0;
        end else begin
            if (wr_fire)
                bvalid_q <= 1'b1;
            else if (s_axi_ctrl_bready)
                bvalid_q <= 1'b0;
            if (rd_fire)
                rvalid_q <= 1'b1;
            else if (s_axi_ctrl_rready)
                rvalid_q <= 1'b0;
        end
    end

    // ------------------------------------------------------------------ control
    wire ctrl_wr = wr_fire & s_axi_ctrl_wstrb[0] & (wr_word == `STREAM_PROBE_WORD_CTRL);
    reg  enable_q;
    reg  clear_q;  // counters, statistics, slots and flags are zeroed while this is high

    always @(posedge aclk) begin
        if (!aresetn)
            enable_q <= |(`STREAM_PROBE_CTRL_RESET & (32'd1 << `STREAM_PROBE_CTRL_ENABLE_LSB));
        else if (ctrl_wr)
            enable_q <= s_axi_ctrl_wdata[`STREAM_PROBE_CTRL_ENABLE_LSB];
        clear_q <= ~aresetn | (ctrl_wr & s_axi_ctrl_wdata[`STREAM_PROBE_CTRL_CLEAR_LSB]);
    end

    // ------------------------------------------------------------------ stream observation
    wire in_beat   = s_axis_in_tvalid & m_axis_in_tready;
    wire out_beat  = s_axis_out_tvalid & m_axis_out_tready;
    // Inside a transfer: first beat seen, TLAST beat not yet. CLEAR resets this framing too, so
    // a CLEAR while idle brings the probe back in step after a DMA was reset mid-transfer.
    reg  in_busy_q, out_busy_q;
    wire in_first  = in_beat & ~in_busy_q;
    wire out_first = out_beat & ~out_busy_q;
    wire out_last  = out_beat & s_axis_out_tlast;

    always @(posedge aclk) begin
        if (clear_q) begin
            in_busy_q  <= 1'b0;
            out_busy_q <= 1'b0;
        end else begin
            if (in_beat)
                in_busy_q <= ~s_axis_in_tlast;
            if (out_beat)
                out_busy_q <= ~s_axis_out_tlast;
        end
    end

    // ------------------------------------------------------------------ event counters
    reg [63:0] cycles_q, in_beats_q, out_beats_q, transfers_q;

    always @(posedge aclk) begin
        if (clear_q) cycles_q <= 64'd0;
        else         cycles_q <= cycles_q + 64'd1;
        if (clear_q)                  in_beats_q <= 64'd0;
        else if (enable_q & in_beat)  in_beats_q <= in_beats_q + 64'd1;
        if (clear_q)                  out_beats_q <= 64'd0;
        else if (enable_q & out_beat) out_beats_q <= out_beats_q + 64'd1;
    end

    // ------------------------------------------------------------------ pending input starts
    // A ring of FIFO_DEPTH age counters: a start loads 1 into the slot at wr_ptr (the age seen
    // one cycle later), every slot counts up every cycle, the oldest pending one is at rd_ptr.
    // (A flat vector rather than an array: plain flip-flops for every tool.)
    reg [FIFO_DEPTH*LW-1:0] age_q;
    reg [PW-1:0] wr_ptr_q, rd_ptr_q;
    reg [PW:0]   count_q;
    wire [31:0]  count_ext  = {{(31 - PW){1'b0}}, count_q};
    wire         fifo_empty = (count_ext == 32'd0);
    wire         fifo_full  = (count_ext == CONFIG_DEPTH);

    // An output transfer is matched at its first beat if a start is pending, or arrives in the
    // same cycle (bypass: nothing pending, the matching start is pushed now; it measures 0).
    reg  out_matched_q;
    wire start     = enable_q & in_first;
    wire bypass    = fifo_empty;
    // `finish` without the bypass case; equal to it whenever the ring is full (hence not empty),
    // so a start can take the slot a simultaneous finish frees, without a combinational loop
    wire finish_nb = enable_q & out_last & (out_first ? ~fifo_empty : out_matched_q);
    wire push      = start & (~fifo_full | finish_nb);
    wire match_now = enable_q & out_first & (~fifo_empty | push);
    wire matched   = out_first ? match_now : out_matched_q;
    wire finish    = enable_q & out_last & matched;  // completes a measured transfer: pop
    wire [LW-1:0] age = age_q[rd_ptr_q * LW +: LW];

    integer slot;
    always @(posedge aclk) begin
        for (slot = 0; slot < FIFO_DEPTH; slot = slot + 1) begin
            if (push && wr_ptr_q == slot[PW-1:0])
                age_q[slot * LW +: LW] <= {{(LW - 1){1'b0}}, 1'b1};
            else
                age_q[slot * LW +: LW] <= age_q[slot * LW +: LW] + 1'b1;
        end
    end

    reg overflow_q, unmatched_q;
    always @(posedge aclk) begin
        if (clear_q) begin
            wr_ptr_q      <= {PW{1'b0}};
            rd_ptr_q      <= {PW{1'b0}};
            count_q       <= {(PW + 1){1'b0}};
            out_matched_q <= 1'b0;
            overflow_q    <= 1'b0;
            unmatched_q   <= 1'b0;
        end else begin
            if (push)
                wr_ptr_q <= wr_ptr_q + 1'b1;
            if (finish)
                rd_ptr_q <= rd_ptr_q + 1'b1;
            if (push & ~finish)
                count_q <= count_q + 1'b1;
            else if (finish & ~push)
                count_q <= count_q - 1'b1;
            if (out_beat)
                out_matched_q <= matched & ~s_axis_out_tlast;
            if (start & ~push)
                overflow_q <= 1'b1;
            if (enable_q & out_first & ~match_now)
                unmatched_q <= 1'b1;
        end
    end

    // ------------------------------------------------------------------ measurements
    reg [LW-1:0] last_latency_q, last_xfer_q, min_latency_q, max_latency_q;
    reg          new_latency_q;  // last_latency_q changed in the previous cycle

    always @(posedge aclk) begin
        // a 0 measurement (bypass) uses the registers' synchronous reset, not a multiplexer
        if (clear_q | (match_now & bypass)) last_latency_q <= {LW{1'b0}};
        else if (match_now)                 last_latency_q <= age;
        if (clear_q | (finish & out_first & bypass)) last_xfer_q <= {LW{1'b0}};
        else if (finish)                             last_xfer_q <= age;
        if (clear_q)     transfers_q <= 64'd0;
        else if (finish) transfers_q <= transfers_q + 64'd1;
        new_latency_q <= match_now & ~clear_q;
        if (clear_q)
            min_latency_q <= MIN_LATENCY_RESET[LW-1:0];
        else if (new_latency_q && last_latency_q < min_latency_q)
            min_latency_q <= last_latency_q;
        if (clear_q)
            max_latency_q <= {LW{1'b0}};
        else if (new_latency_q && last_latency_q > max_latency_q)
            max_latency_q <= last_latency_q;
    end

    // ------------------------------------------------------------------ register read
    // The latency-path registers as 64-bit values (bits above LATENCY_BITS read 0).
    wire [63:0] last_latency_64 = {{(64 - LW){1'b0}}, last_latency_q};
    wire [63:0] last_xfer_64    = {{(64 - LW){1'b0}}, last_xfer_q};
    wire [63:0] min_latency_64  = {{(64 - LW){1'b0}}, min_latency_q};
    wire [63:0] max_latency_64  = {{(64 - LW){1'b0}}, max_latency_q};

    // HI halves latched by LO reads; reset and CLEAR load those of the cleared values.
    // (Written register by register: yosys maps this form to markedly fewer LUTs than an
    // indexed array with the same logic.)
    reg [31:0] hi_cycles_q, hi_in_beats_q, hi_out_beats_q, hi_transfers_q;
    reg [31:0] hi_last_latency_q, hi_last_xfer_q, hi_min_latency_q, hi_max_latency_q;
    always @(posedge aclk) begin
        if (clear_q) begin
            hi_cycles_q       <= 32'd0;
            hi_in_beats_q     <= 32'd0;
            hi_out_beats_q    <= 32'd0;
            hi_transfers_q    <= 32'd0;
            hi_last_latency_q <= 32'd0;
            hi_last_xfer_q    <= 32'd0;
            hi_min_latency_q  <= MIN_LATENCY_RESET[63:32];
            hi_max_latency_q  <= 32'd0;
        end else if (rd_fire) begin
            if (rd_word == `STREAM_PROBE_WORD_CYCLES_LO)             hi_cycles_q       <= cycles_q[63:32];
            if (rd_word == `STREAM_PROBE_WORD_IN_BEATS_LO)           hi_in_beats_q     <= in_beats_q[63:32];
            if (rd_word == `STREAM_PROBE_WORD_OUT_BEATS_LO)          hi_out_beats_q    <= out_beats_q[63:32];
            if (rd_word == `STREAM_PROBE_WORD_TRANSFERS_LO)          hi_transfers_q    <= transfers_q[63:32];
            if (rd_word == `STREAM_PROBE_WORD_LAST_LATENCY_LO)       hi_last_latency_q <= last_latency_64[63:32];
            if (rd_word == `STREAM_PROBE_WORD_LAST_TRANSFER_TIME_LO) hi_last_xfer_q    <= last_xfer_64[63:32];
            if (rd_word == `STREAM_PROBE_WORD_MIN_LATENCY_LO)        hi_min_latency_q  <= min_latency_64[63:32];
            if (rd_word == `STREAM_PROBE_WORD_MAX_LATENCY_LO)        hi_max_latency_q  <= max_latency_64[63:32];
        end
    end

    // 32-bit registers: lower half of the address space, indexed by the word within it.
    reg [31:0] narrow_mux;
    always @(*) begin
        narrow_mux = 32'd0;
        case (rd_word[AW-4:0])
            `STREAM_PROBE_NARROW_ID:      narrow_mux = `STREAM_PROBE_ID_MAGIC;
            `STREAM_PROBE_NARROW_VERSION: narrow_mux = `STREAM_PROBE_VERSION;
            `STREAM_PROBE_NARROW_CONFIG: begin
                narrow_mux[`STREAM_PROBE_CONFIG_FIFO_DEPTH_LSB +: `STREAM_PROBE_CONFIG_FIFO_DEPTH_WIDTH] =
                    CONFIG_DEPTH[`STREAM_PROBE_CONFIG_FIFO_DEPTH_WIDTH-1:0];
                narrow_mux[`STREAM_PROBE_CONFIG_BYTES_IN_LSB +: `STREAM_PROBE_CONFIG_BYTES_IN_WIDTH] =
                    CONFIG_BYTES_IN[`STREAM_PROBE_CONFIG_BYTES_IN_WIDTH-1:0];
                narrow_mux[`STREAM_PROBE_CONFIG_BYTES_OUT_LSB +: `STREAM_PROBE_CONFIG_BYTES_OUT_WIDTH] =
                    CONFIG_BYTES_OUT[`STREAM_PROBE_CONFIG_BYTES_OUT_WIDTH-1:0];
            end
            `STREAM_PROBE_NARROW_CTRL:
                narrow_mux[`STREAM_PROBE_CTRL_ENABLE_LSB] = enable_q;
            `STREAM_PROBE_NARROW_STATUS: begin
                narrow_mux[`STREAM_PROBE_STATUS_OVERFLOW_LSB]  = overflow_q;
                narrow_mux[`STREAM_PROBE_STATUS_UNMATCHED_LSB] = unmatched_q;
                narrow_mux[`STREAM_PROBE_STATUS_IN_BUSY_LSB]   = in_busy_q;
                narrow_mux[`STREAM_PROBE_STATUS_OUT_BUSY_LSB]  = out_busy_q;
                narrow_mux[`STREAM_PROBE_STATUS_PENDING_LSB +: `STREAM_PROBE_STATUS_PENDING_WIDTH] =
                    count_ext[`STREAM_PROBE_STATUS_PENDING_WIDTH-1:0];
            end
            default: narrow_mux = 32'd0;
        endcase
    end

    // 64-bit registers: upper half, a 16-way multiplexer indexed by {register, HI} address bits.
    reg [31:0] wide_mux;
    always @(*) begin
        case ({rd_widx, rd_hi})
            {`STREAM_PROBE_WIDE_CYCLES, 1'b0}:             wide_mux = cycles_q[31:0];
            {`STREAM_PROBE_WIDE_CYCLES, 1'b1}:             wide_mux = hi_cycles_q;
            {`STREAM_PROBE_WIDE_IN_BEATS, 1'b0}:           wide_mux = in_beats_q[31:0];
            {`STREAM_PROBE_WIDE_IN_BEATS, 1'b1}:           wide_mux = hi_in_beats_q;
            {`STREAM_PROBE_WIDE_OUT_BEATS, 1'b0}:          wide_mux = out_beats_q[31:0];
            {`STREAM_PROBE_WIDE_OUT_BEATS, 1'b1}:          wide_mux = hi_out_beats_q;
            {`STREAM_PROBE_WIDE_TRANSFERS, 1'b0}:          wide_mux = transfers_q[31:0];
            {`STREAM_PROBE_WIDE_TRANSFERS, 1'b1}:          wide_mux = hi_transfers_q;
            {`STREAM_PROBE_WIDE_LAST_LATENCY, 1'b0}:       wide_mux = last_latency_64[31:0];
            {`STREAM_PROBE_WIDE_LAST_LATENCY, 1'b1}:       wide_mux = hi_last_latency_q;
            {`STREAM_PROBE_WIDE_LAST_TRANSFER_TIME, 1'b0}: wide_mux = last_xfer_64[31:0];
            {`STREAM_PROBE_WIDE_LAST_TRANSFER_TIME, 1'b1}: wide_mux = hi_last_xfer_q;
            {`STREAM_PROBE_WIDE_MIN_LATENCY, 1'b0}:        wide_mux = min_latency_64[31:0];
            {`STREAM_PROBE_WIDE_MIN_LATENCY, 1'b1}:        wide_mux = hi_min_latency_q;
            {`STREAM_PROBE_WIDE_MAX_LATENCY, 1'b0}:        wide_mux = max_latency_64[31:0];
            {`STREAM_PROBE_WIDE_MAX_LATENCY, 1'b1}:        wide_mux = hi_max_latency_q;
            default: wide_mux = 32'd0;
        endcase
    end

    always @(posedge aclk) begin
        if (rd_fire)
            rdata_q <= rd_wide ? wide_mux : narrow_mux;
    end

endmodule

`default_nettype wire
