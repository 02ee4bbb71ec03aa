import CMultiheadKernels

// The five BLIS loops around the micro-kernel, outermost first:
//
//   loop 5  NC  column blocks   B block [k x NC]: pre-packed, or packed once here
//   loop 4  MC  row blocks
//   loop 3  KC  depth blocks    A block [MC x KC] packed per (row block, depth block)
//   loop 2  NR  column panels
//   loop 1  MR  row panels      micro-kernel
//
// One change from BLIS (which nests KC outside MC and keeps partial sums in C): the epilogue
// (bias, scale, accumulate into C) must see complete sums, and C may not hold partial ones
// when accumulating. With KC inside MC, the partial sums of one MC x NC block live in a
// workspace scratch between depth blocks, and C is written once per element. B costs nothing
// more: it is packed whole (weights at load time, an unpacked B once per NC block), so every
// MC block sweeps the same packed [k x NC] block, read from L3 about once per 2*MC flops.

/// The operands of one multiply, as the loops see them.
struct GEMMOperands {
    /// `[m x k]`, any strides.
    let a: MatrixView
    /// `[m x n]`, any strides.
    let c: MutableMatrixView
    /// `nil` or indexed by the column of `c`.
    let bias: UnsafePointer<Float>?
    let scale: Float
    let accumulate: Bool

    var epilogueFlags: UInt32 {
        UInt32(MH_MICROKERNEL_EPILOGUE) | (accumulate ? UInt32(MH_MICROKERNEL_ACCUMULATE) : 0)
    }
}

/// B packed in NR-column panels, depth block after depth block (the `PackedMatrix` layout):
/// the panel `jp` of the depth block that starts at row `p0` and is `kc` deep starts at
/// `base + p0 * panelCount * nr + jp * kc * nr` and holds `B(p0 + p, jp * nr + j)` at `p * nr + j`.
struct GEMMPanels {
    let base: UnsafePointer<Float>
    /// Panels per depth block (all of B's columns).
    let panelCount: Int
    let nr: Int

    @inline(__always)
    func panel(_ jp: Int, depthStart p0: Int, depth kc: Int) -> UnsafePointer<Float> {
        base + p0 * panelCount * nr + jp * kc * nr
    }
}

/// The panels `firstPanel..<endPanel` of one NC block and the C columns they make.
struct GEMMColumnBlock {
    let panels: GEMMPanels
    let firstPanel: Int
    let endPanel: Int
    /// Panel column `q` (`= jp * NR + j`) is C column `q - origin`.
    let origin: Int
    /// The C columns written by this block (a panel may straddle its ends).
    let columns: Range<Int>
}

extension GEMM {
    /// Loop 5 over a pre-packed B: NC blocks of whole panels.
    /// Assumes: `columns` is non-empty and inside `0..<packed.n`; `c` has `columns.count` columns.
    static func loopOverColumnBlocks(
        _ operands: GEMMOperands, packed: PackedMatrix, columns: Range<Int>, workspace: GEMMWorkspace
    ) {
        let blocking = packed.blocking
        let nr = blocking.nr
        let panelsPerBlock = blocking.nc / nr
        let origin = columns.lowerBound
        let firstPanel = columns.lowerBound / nr
        let endPanel = (columns.upperBound + nr - 1) / nr
        for start in stride(from: firstPanel, to: endPanel, by: panelsPerBlock) {
            let end = Swift.min(start + panelsPerBlock, endPanel)
            let block = GEMMColumnBlock(
                panels: packed.panels, firstPanel: start, endPanel: end, origin: origin,
                columns: Swift.max(start * nr - origin, 0)..<Swift.min(end * nr - origin, columns.count))
            loopOverRowBlocks(operands, block, kernel: packed.kernel, blocking: blocking, workspace: workspace)
        }
    }

    /// Loop 5 over an unpacked B: packs each `[k x NC]` block into the workspace.
    /// Assumes: `b` is `[k x n]` for `operands` and n > 0. The block width is capped so the
    /// packed block fits half of L3 (at least one panel), bounding the workspace.
    static func loopOverColumnBlocks(_ operands: GEMMOperands, unpacked b: MatrixView, workspace: GEMMWorkspace) {
        let blocking = workspace.blocking
        let nr = blocking.nr
        let k = b.rows, n = b.cols
        let fitting = workspace.cacheSizes.l3 / 2 / (Swift.max(k, 1) * MemoryLayout<Float>.size) / nr * nr
        let nc = Swift.max(nr, Swift.min(blocking.nc, fitting))
        for jc in stride(from: 0, to: n, by: nc) {
            let width = Swift.min(nc, n - jc)
            let panelCount = (width + nr - 1) / nr
            let packedB = workspace.packedB.reserve(k * panelCount * nr)
            packB(b, columns: jc..<(jc + width), kc: blocking.kc, kernel: workspace.kernel, into: packedB)
            let block = GEMMColumnBlock(
                panels: GEMMPanels(base: packedB, panelCount: panelCount, nr: nr),
                firstPanel: 0, endPanel: panelCount, origin: -jc, columns: jc..<(jc + width))
            loopOverRowBlocks(operands, block, kernel: workspace.kernel, blocking: blocking, workspace: workspace)
        }
    }

    /// Loop 4: MC row blocks of C for one NC block.
    /// Assumes: `block` is packed for `kernel`/`blocking` and covers a non-empty column range.
    static func loopOverRowBlocks(
        _ operands: GEMMOperands, _ block: GEMMColumnBlock, kernel: MicroKernel, blocking: GEMMBlocking,
        workspace: GEMMWorkspace
    ) {
        let m = operands.c.rows
        for ic in stride(from: 0, to: m, by: blocking.mc) {
            let rows = ic..<Swift.min(ic + blocking.mc, m)
            loopOverDepthBlocks(operands, block, rows: rows, kernel: kernel, blocking: blocking, workspace: workspace)
        }
    }

    /// Loop 3: KC depth blocks, in increasing order, for one MC x NC block of C; packs A.
    /// Assumes: `rows` is non-empty. With k > KC the sums go through the workspace's partial
    /// sums (one MR x NR tile per micro-kernel call); k == 0 is one empty depth block, so the
    /// epilogue still runs.
    static func loopOverDepthBlocks(
        _ operands: GEMMOperands, _ block: GEMMColumnBlock, rows: Range<Int>, kernel: MicroKernel,
        blocking: GEMMBlocking, workspace: GEMMWorkspace
    ) {
        let k = operands.a.cols
        let mr = blocking.mr, nr = blocking.nr
        let rowPanelCount = (rows.count + mr - 1) / mr
        let depthBlockCount = Swift.max(1, (k + blocking.kc - 1) / blocking.kc)
        let partialSums: UnsafeMutablePointer<Float>? = depthBlockCount == 1 ? nil
            : workspace.partialSums.reserve(rowPanelCount * mr * (block.endPanel - block.firstPanel) * nr)
        let edgeTile = workspace.edgeTile.reserve(mr * nr)
        for depthBlock in 0..<depthBlockCount {
            let p0 = depthBlock * blocking.kc
            let depth = p0..<Swift.min(p0 + blocking.kc, k)
            let packedA = workspace.packedA.reserve(rowPanelCount * mr * depth.count)
            packA(operands.a, rows: rows, depth: depth, kernel: kernel, into: packedA)
            let tiles = GEMMTileSweep(
                rows: rows, rowPanelCount: rowPanelCount, depth: depth, packedA: packedA,
                partialSums: partialSums, first: depthBlock == 0, last: depthBlock == depthBlockCount - 1,
                edgeTile: edgeTile)
            loopOverColumnPanels(operands, block, tiles, kernel: kernel)
        }
    }

    /// Loop 2: the NR panels of the NC block.
    static func loopOverColumnPanels(
        _ operands: GEMMOperands, _ block: GEMMColumnBlock, _ tiles: GEMMTileSweep, kernel: MicroKernel
    ) {
        let nr = block.panels.nr
        for jp in block.firstPanel..<block.endPanel {
            let panelColumn0 = jp * nr - block.origin
            let columns = Swift.max(panelColumn0, block.columns.lowerBound)
                ..< Swift.min(panelColumn0 + nr, block.columns.upperBound)
            let bPanel = block.panels.panel(jp, depthStart: tiles.depth.lowerBound, depth: tiles.depth.count)
            let sums = tiles.partialSums.map { $0 + (jp - block.firstPanel) * tiles.rowPanelCount * kernel.mr * nr }
            loopOverRowPanels(
                operands, tiles, bPanel: bPanel, panelColumn0: panelColumn0, columns: columns,
                partialSums: sums, kernel: kernel)
        }
    }

    /// Loop 1: the MR panels of the MC block against one B panel, each one micro-kernel call.
    /// Assumes: `columns` (C columns) lies inside the panel `panelColumn0 ..< panelColumn0 + NR`;
    /// `partialSums` (when k > KC) holds this panel's tiles, one MR x NR tile per row panel.
    /// Full tiles of the last depth block get the epilogue inside the kernel; edge tiles
    /// (fewer rows or columns) are computed into the edge tile and copied out.
    static func loopOverRowPanels(
        _ operands: GEMMOperands, _ tiles: GEMMTileSweep, bPanel: UnsafePointer<Float>, panelColumn0: Int,
        columns: Range<Int>, partialSums: UnsafeMutablePointer<Float>?, kernel: MicroKernel
    ) {
        let mr = kernel.mr, nr = kernel.nr
        let kc = tiles.depth.count
        let c = operands.c
        let fullWidth = columns.count == nr
        var args = mh_f32_microkernel_args(sums_in: nil, bias: nil, scale: operands.scale, flags: 0)
        for ip in 0..<tiles.rowPanelCount {
            let i0 = tiles.rows.lowerBound + ip * mr
            let rowCount = Swift.min(mr, tiles.rows.upperBound - i0)
            let aPanel = UnsafePointer(tiles.packedA + ip * mr * kc)
            let tileSums = partialSums.map { $0 + ip * mr * nr }
            args.sums_in = tiles.first ? nil : UnsafePointer(tileSums)
            if !tiles.last {
                args.flags = 0
                kernel(kc: kc, a: aPanel, b: bPanel, c: tileSums!, rowStride: nr, colStride: 1, args: &args)
                continue
            }
            let cTile = c.base + i0 * c.rowStride + columns.lowerBound * c.colStride
            let bias = operands.bias.map { $0 + columns.lowerBound }
            if rowCount == mr && fullWidth {
                args.flags = operands.epilogueFlags
                args.bias = bias
                kernel(kc: kc, a: aPanel, b: bPanel, c: cTile, rowStride: c.rowStride, colStride: c.colStride, args: &args)
            } else {
                args.flags = 0
                kernel(kc: kc, a: aPanel, b: bPanel, c: tiles.edgeTile, rowStride: nr, colStride: 1, args: &args)
                let tileColumns = (columns.lowerBound - panelColumn0)..<(columns.upperBound - panelColumn0)
                MicroKernel.storeTile(
                    tiles.edgeTile, tileRowStride: nr, rows: rowCount, columns: tileColumns, into: cTile,
                    rowStride: c.rowStride, colStride: c.colStride, bias: bias, scale: operands.scale,
                    flags: operands.epilogueFlags)
            }
        }
    }
}

/// What loops 2 and 1 need from loop 3: one depth block of one MC row block.
struct GEMMTileSweep {
    let rows: Range<Int>
    let rowPanelCount: Int
    let depth: Range<Int>
    /// `[MC x kc]` in MR-row panels (`GEMM.packA`).
    let packedA: UnsafeMutablePointer<Float>
    /// `nil` when k fits one depth block.
    let partialSums: UnsafeMutablePointer<Float>?
    /// The first depth block starts its sums at 0; the last one writes C.
    let first: Bool
    let last: Bool
    let edgeTile: UnsafeMutablePointer<Float>
}
