/**
 * The commit graph's layout: which column (lane) each commit sits in and how the lines of
 * descent run between rows. Pure computation, no DOM: the History panel and `nbstate serve`
 * draw what it returns, and the unit tests check it.
 *
 * Commits come newest first (one row each, top to bottom), as `%nbstate log --all --json` lists
 * them. As in `git log --graph`, every open line of descent holds a lane that waits for the
 * commit it leads to (a parent further down). A commit takes the first lane that waits for it,
 * or a free lane when none does (a branch tip); other lanes waiting for it end there, joining
 * it (their commits forked from it). The commit's own lane then waits for its parent. A parent
 * that is not in the list (the history was cut) keeps its lane open to the bottom.
 */
export function layoutGraph(commits) {
    const rowOf = new Map();
    commits.forEach((c, i) => {
        if (!rowOf.has(c.commit)) {
            rowOf.set(c.commit, i);
        }
    });
    const lanes = [];
    // Per lane: the child whose line of descent occupies it (to build the edge on arrival).
    const waiting = [];
    const nodes = [];
    const edges = [];
    let width = 0;
    const rows = commits.length;
    commits.forEach((c, row) => {
        if (rowOf.get(c.commit) !== row) {
            return; // a duplicate entry: drawn once
        }
        let lane = lanes.indexOf(c.commit);
        if (lane === -1) {
            lane = lanes.indexOf(null);
            if (lane === -1) {
                lane = lanes.length;
                lanes.push(null);
                waiting.push(null);
            }
        }
        // Every lane waiting for this commit ends here with an edge from its child.
        for (let j = 0; j < lanes.length; j++) {
            if (lanes[j] === c.commit) {
                const w = waiting[j];
                edges.push({
                    from: w.child,
                    to: c.commit,
                    fromRow: w.row,
                    fromLane: w.lane,
                    toRow: row,
                    toLane: lane,
                    lane: j,
                    truncated: false
                });
                lanes[j] = null;
                waiting[j] = null;
            }
        }
        nodes.push({ id: c.commit, row, lane });
        if (c.parent !== null && c.parent !== undefined) {
            const parentRow = rowOf.get(c.parent);
            if (parentRow !== undefined && parentRow <= row) {
                // A parent listed above its child would be a cycle or a misordered list: no line.
            }
            else if (parentRow === undefined) {
                edges.push({
                    from: c.commit,
                    to: c.parent,
                    fromRow: row,
                    fromLane: lane,
                    toRow: rows,
                    toLane: lane,
                    lane,
                    truncated: true
                });
                lanes[lane] = `\u0000cut:${c.commit}`; // held open to the bottom
            }
            else {
                lanes[lane] = c.parent;
                waiting[lane] = { child: c.commit, row, lane };
            }
        }
        width = Math.max(width, lanes.length);
        // Free lanes at the right end are given back, so the graph stays narrow.
        while (lanes.length > 0 && lanes[lanes.length - 1] === null) {
            lanes.pop();
            waiting.pop();
        }
    });
    return { nodes, edges, width: Math.max(width, commits.length ? 1 : 0), rows };
}
/** The SVG path of an edge, for rows `rowHeight` apart and lanes `laneWidth` apart. */
export function edgePath(e, laneWidth, rowHeight, x0 = laneWidth / 2, y0 = rowHeight / 2) {
    const x = (lane) => x0 + lane * laneWidth;
    const y = (row) => y0 + row * rowHeight;
    const parts = [`M ${x(e.fromLane)} ${y(e.fromRow)}`];
    if (e.fromLane !== e.lane) {
        // A fork's first step: from the child's node into the lane that runs down.
        parts.push(`C ${x(e.fromLane)} ${y(e.fromRow) + rowHeight / 2} ${x(e.lane)} ${y(e.fromRow) + rowHeight / 2} ${x(e.lane)} ${y(e.fromRow + 1)}`);
    }
    const bendRow = e.truncated ? e.toRow : e.toRow - 1;
    if (e.truncated) {
        parts.push(`L ${x(e.lane)} ${y(e.toRow) - rowHeight / 2}`);
    }
    else if (e.lane === e.toLane) {
        parts.push(`L ${x(e.lane)} ${y(e.toRow)}`);
    }
    else {
        if (bendRow > e.fromRow) {
            parts.push(`L ${x(e.lane)} ${y(bendRow)}`);
        }
        parts.push(`C ${x(e.lane)} ${y(bendRow) + rowHeight / 2} ${x(e.toLane)} ${y(e.toRow) - rowHeight / 2} ${x(e.toLane)} ${y(e.toRow)}`);
    }
    return parts.join(' ');
}
