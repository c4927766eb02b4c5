// Unit tests of the commit graph's layout (src/core/layout.ts), run with node's test runner on
// the compiled module that `nbstate serve` ships (make labextension compiles it).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { edgePath, layoutGraph } from '../../src/nbstate/webapp/core/layout.js';

const c = (commit, parent = null) => ({ commit, parent });
const lanes = layout => Object.fromEntries(layout.nodes.map(n => [n.id, n.lane]));

test('an empty history has no nodes, no edges and no width', () => {
  const l = layoutGraph([]);
  assert.deepEqual(l, { nodes: [], edges: [], width: 0, rows: 0 });
});

test('a line of commits stays in one lane, one edge per parent', () => {
  const l = layoutGraph([c('d', 'c'), c('c', 'b'), c('b', 'a'), c('a')]);
  assert.deepEqual(lanes(l), { d: 0, c: 0, b: 0, a: 0 });
  assert.equal(l.width, 1);
  assert.deepEqual(
    l.edges.map(e => [e.from, e.to, e.fromRow, e.toRow, e.fromLane, e.toLane]),
    [['d', 'c', 0, 1, 0, 0], ['c', 'b', 1, 2, 0, 0], ['b', 'a', 2, 3, 0, 0]]
  );
  assert.ok(l.edges.every(e => !e.truncated));
});

test('two children of one commit: a second lane that joins at the fork point', () => {
  // e and d both continue b (an undo followed by a new cell forks a branch).
  const l = layoutGraph([c('e', 'b'), c('d', 'c'), c('c', 'b'), c('b', 'a'), c('a')]);
  assert.deepEqual(lanes(l), { e: 0, d: 1, c: 1, b: 0, a: 0 });
  assert.equal(l.width, 2);
  const join = l.edges.find(e => e.from === 'c');
  assert.deepEqual([join.to, join.lane, join.toLane, join.toRow], ['b', 1, 0, 3]);
  const straight = l.edges.find(e => e.from === 'e');
  assert.deepEqual([straight.lane, straight.toLane, straight.fromRow, straight.toRow], [0, 0, 0, 3]);
});

test('lanes freed by a join are reused by later branch tips, so the graph stays narrow', () => {
  const l = layoutGraph([
    c('x2', 'x1'),
    c('x1', 'b'),
    c('b', 'a'), // x1 joins here: lane 1 is free again
    c('y1', 'a0'), // an unrelated tip further down takes the free lane
    c('a', 'a0'),
    c('a0')
  ]);
  assert.equal(lanes(l).x1, 0);
  assert.equal(l.width, 2);
  for (const n of l.nodes) {
    assert.ok(n.lane < 2, `${n.id} in lane ${n.lane}`);
  }
});

test('no two lines of descent share a lane at the same row', () => {
  // Three branches from one root, interleaved in time.
  const commits = [c('a3', 'a2'), c('b2', 'b1'), c('a2', 'a1'), c('c1', 'r'), c('b1', 'r'), c('a1', 'r'), c('r')];
  const l = layoutGraph(commits);
  for (let row = 0; row < l.rows; row++) {
    const used = new Map();
    for (const e of l.edges) {
      // The part of an edge strictly between its rows runs down its lane.
      if (e.fromRow < row && row < e.toRow) {
        assert.ok(!used.has(e.lane), `row ${row}: lane ${e.lane} used by ${used.get(e.lane)} and ${e.from}`);
        used.set(e.lane, e.from);
      }
    }
    const node = l.nodes.find(n => n.row === row);
    assert.ok(!used.has(node.lane), `row ${row}: node ${node.id} sits on a passing line`);
  }
  assert.equal(l.width, 3);
});

test('a parent outside the list (a cut history) keeps its line open to the bottom', () => {
  const l = layoutGraph([c('b', 'a'), c('a', 'gone')]);
  const cut = l.edges.find(e => e.from === 'a');
  assert.ok(cut.truncated);
  assert.deepEqual([cut.toRow, cut.lane], [2, 0]);
  // A later tip may not take a lane that is held open.
  const l2 = layoutGraph([c('p', 'gone'), c('q')]);
  assert.deepEqual(lanes(l2), { p: 0, q: 1 });
});

test('every commit is placed once, in its own row, even when listed twice', () => {
  const l = layoutGraph([c('b', 'a'), c('b', 'a'), c('a')]);
  assert.deepEqual(l.nodes.map(n => [n.id, n.row]), [['b', 0], ['a', 2]]);
});

test('edge paths start at the child and end at the parent', () => {
  const l = layoutGraph([c('e', 'b'), c('d', 'c'), c('c', 'b'), c('b', 'a'), c('a')]);
  for (const e of l.edges) {
    const d = edgePath(e, 10, 20, 5, 10);
    assert.match(d, new RegExp(`^M ${5 + e.fromLane * 10} ${10 + e.fromRow * 20}`));
    assert.ok(d.endsWith(`${5 + e.toLane * 10} ${10 + e.toRow * 20}`), d);
  }
});

test('a long history lays out quickly', () => {
  const commits = [];
  for (let i = 5000; i > 0; i--) {
    commits.push(c(`n${i}`, i % 50 === 0 ? `n${i - 25}` : `n${i - 1}`));
  }
  commits.push(c('n0'));
  const t0 = Date.now();
  const l = layoutGraph(commits);
  assert.equal(l.nodes.length, 5001);
  assert.ok(Date.now() - t0 < 1000);
});
