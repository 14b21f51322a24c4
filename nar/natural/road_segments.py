"""``road``'s segments: OSM tags in, static edge features and the hidden travel-time model out.

A directed segment of the intersection graph (:mod:`nar.natural.osm`) is a run of OSM way pieces
(parts). :func:`encode_segments` turns every segment of a network into its static features and
the static terms of its hidden cost; :func:`travel_time` and :func:`congestion_field` give the
per-example cost (:class:`nar.natural.road.RoadTask` draws the examples).

Hidden travel time of a directed segment (seconds), never an input. Per OSM piece (part) of
the segment, from its tags::

    class speed   C[class] km/h (motorway 90, trunk 70, primary 50, secondary 42, tertiary 36,
                  unclassified 30, residential 25, road 25, service 15, living_street 12,
                  other 20), x 0.7 for *_link roads
    limit         maxspeed in km/h when it parses, else C[class]
    free speed    v = sqrt(C[class] * limit)                   (limits alone are 30/40 km/h in Helsinki)
                      * lanes_dir ** 0.3                        lanes in this direction: lanes (one-way)
                                                                or lanes / 2 (two-way), min 1; missing ->
                                                                the class default (4 for primary and up, else 2)
                      * S[surface]                             asphalt/paved/concrete 1, paving_stones .85,
                                                                sett .75, cobblestone .65, gravel-like .55,
                                                                other .85, missing .95 (several: the lowest)
    sensitivity   K[class]                                     motorway 2.5, trunk 2.2, primary 2, secondary
                                                                1.6, tertiary 1.2, unclassified .7, road .6,
                                                                residential .5, service/living_street .3

and per segment and example::

    congestion    c = L + sum_g a_g exp(-|m - p_g|^2 / (2 s_g^2)) at the segment's midpoint m:
                  a smooth random field (level L ~ U[0, 0.4]; 3 bumps, centres p_g uniform over the
                  subgraph's box grown by 150 m, widths s_g ~ U[80, 300] m, heights a_g ~ U[0.5, 2])
    drive         3.6 * sum_parts length_p * (1 + K_p c) / v_p / exp(0.15 z_seg)
                  (z_seg ~ N(0, 1): a static per-segment factor, fixed by the seed: unmapped causes)
    stops         + (signals on the segment + a signal at its head node) * (8 + 12 c) s
                  + crossings on it * 2 s + give-way/stop signs (on it and at its head) * 3 s
    incident      with probability 0.1 the whole time is multiplied by U[3, 8] (roadworks, a
                  crash, double parking)
    travel time   at least 0.1 s, rounded to float32 before the targets are computed

Static edge features (``STATIC_EDGE_FEATURES``, one row per directed segment).
Segment-level: length (/100 m, log), straightness, number of OSM pieces, effective one-way,
counts of signals, crossings and give-way signs on the segment, flags for its head and tail
nodes. Tag-level, averaged over the parts weighted by their lengths (so a one-hot becomes the
share of the segment's length with that value; numbers are averaged over the parts that have
one): highway class one-hot (+ other, missing) and link flag; lanes, maxspeed, width parsed,
each with missing and unparsed shares; surface multi-hot (+ other, missing); oneway tag
(yes, no, reverse, other, missing) and the share travelled against the way's drawing; lit
(yes, no, other, missing); bridge, tunnel, junction (value + missing); every other tag as
found hashed (crc32 of ``key=value``) into ``HASH_BUCKETS`` buckets (names, sources, dates,
notes left out).
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass

import numpy as np

from nar.natural.osm import RoadNetwork, ignored_key

HASH_BUCKETS = 32

HIGHWAYS = (
    "motorway",
    "trunk",
    "primary",
    "secondary",
    "tertiary",
    "unclassified",
    "residential",
    "living_street",
    "service",
    "road",
)
CLASS_SPEED = {
    "motorway": 90.0,
    "trunk": 70.0,
    "primary": 50.0,
    "secondary": 42.0,
    "tertiary": 36.0,
    "unclassified": 30.0,
    "residential": 25.0,
    "road": 25.0,
    "service": 15.0,
    "living_street": 12.0,
}
OTHER_SPEED = 20.0
LINK_FACTOR = 0.7
CLASS_LANES = {"motorway": 4.0, "trunk": 4.0, "primary": 4.0, "secondary": 2.0, "tertiary": 2.0}  # both ways
CONGESTION_SENSITIVITY = {
    "motorway": 2.5,
    "trunk": 2.2,
    "primary": 2.0,
    "secondary": 1.6,
    "tertiary": 1.2,
    "unclassified": 0.7,
    "residential": 0.5,
    "road": 0.6,
    "service": 0.3,
    "living_street": 0.3,
}
OTHER_SENSITIVITY = 0.6
PROBE_RATE = {"motorway": 0.6, "trunk": 0.6, "primary": 0.55, "secondary": 0.45, "tertiary": 0.35}
PROBE_RATE.update({"unclassified": 0.25, "residential": 0.2})
OTHER_PROBE_RATE = 0.15
SURFACES = (
    "asphalt",
    "paved",
    "concrete",
    "paving_stones",
    "sett",
    "cobblestone",
    "unhewn_cobblestone",
    "compacted",
    "fine_gravel",
    "gravel",
    "unpaved",
    "dirt",
    "ground",
    "grass",
    "wood",
    "metal",
)
SURFACE_FACTOR = {"asphalt": 1.0, "paved": 1.0, "concrete": 1.0, "paving_stones": 0.85, "sett": 0.75}
SURFACE_FACTOR.update({"cobblestone": 0.65, "unhewn_cobblestone": 0.6, "wood": 0.8, "metal": 0.8})
SURFACE_FACTOR.update({s: 0.55 for s in ("compacted", "fine_gravel", "gravel", "unpaved", "dirt", "ground", "grass")})
OTHER_SURFACE_FACTOR = 0.85
MISSING_SURFACE_FACTOR = 0.95
SIGNAL_DELAY = (8.0, 12.0)  # seconds: base + per unit of congestion
CROSSING_DELAY = 2.0
GIVE_WAY_DELAY = 3.0
STATIC_NOISE = 0.15
LANE_EXPONENT = 0.3
CONGESTION_LEVEL = (0.0, 0.4)
CONGESTION_BUMPS = 3
CONGESTION_WIDTH = (80.0, 300.0)
CONGESTION_AMPLITUDE = (0.5, 2.0)
CONGESTION_MARGIN = 150.0
ONEWAY_VALUES = ("yes", "no", "reverse")
LIT_VALUES = ("yes", "no")
EXPLICIT_KEYS = {
    "highway",
    "lanes",
    "maxspeed",
    "surface",
    "oneway",
    "lit",
    "bridge",
    "tunnel",
    "junction",
    "width",
}


SEGMENT_FEATURES = [
    "length_100m",
    "log_length_m",
    "straightness",
    "osm_pieces_10",
    "oneway_effective",
    "signals_on_segment",
    "crossings_on_segment",
    "give_way_on_segment",
    "head_signals",
    "head_crossing",
    "head_give_way",
    "tail_signals",
]


def _part_feature_names() -> list[str]:
    names = [f"highway_{h}" for h in HIGHWAYS] + ["highway_other", "highway_missing", "highway_link"]
    names += ["lanes", "lanes_missing", "lanes_unparsed"]
    names += ["maxspeed_50kmh", "maxspeed_missing", "maxspeed_unparsed"]
    names += ["width_10m", "width_missing", "width_unparsed"]
    names += [f"surface_{s}" for s in SURFACES] + ["surface_other", "surface_missing"]
    names += [f"oneway_tag_{v}" for v in ONEWAY_VALUES] + ["oneway_tag_other", "oneway_tag_missing"]
    names += ["against_drawing"]
    names += [f"lit_{v}" for v in LIT_VALUES] + ["lit_other", "lit_missing"]
    names += ["bridge", "bridge_missing", "tunnel", "tunnel_missing"]
    names += ["junction_roundabout", "junction_other", "junction_missing"]
    names += [f"tag_hash_{i}" for i in range(HASH_BUCKETS)]
    return names


PART_FEATURES = _part_feature_names()
# Numeric part features: averaged over the parts that have a value (0 if none), not over all.
_NUMERIC = {"lanes": "lanes_missing", "maxspeed_50kmh": "maxspeed_missing", "width_10m": "width_missing"}
STATIC_EDGE_FEATURES = SEGMENT_FEATURES + PART_FEATURES


# --------------------------------------------------------------------------- parsing tags


def _number(text: str) -> float | None:
    """The number in ``text`` ('2', '3.5 m'; '2;3' -> 2.5, the mean), None if there is none."""
    values = [float(x) for x in re.findall(r"\d+(?:\.\d+)?", text.replace(",", "."))]
    if not values:
        return None
    return float(np.mean(values)) if ";" in text else values[0]


def parse_maxspeed(text: str) -> float | None:
    """km/h from an OSM maxspeed value ('30', '30 mph', 'walk'), None for zone codes and the like."""
    t = text.strip().lower()
    if t == "walk":
        return 7.0
    if not re.match(r"^\d", t):
        return None
    v = _number(t.split(";")[0])
    if v is None:
        return None
    return v * 1.609344 if "mph" in t else v


def _base_class(highway: str) -> tuple[str, bool]:
    link = highway.endswith("_link")
    return (highway[: -len("_link")] if link else highway), link


def _bucket(key: str, value: str) -> int:
    return zlib.crc32(f"{key}={value}".encode()) % HASH_BUCKETS


_PART_COL = {name: i for i, name in enumerate(PART_FEATURES)}


@dataclass(frozen=True)
class _PartCode:
    x: np.ndarray  # (len(PART_FEATURES),) float64
    has: dict[str, bool]  # numeric feature -> value present
    class_speed: float
    limit: float | None
    lanes: float | None
    surface_factor: float
    sensitivity: float
    probe_rate: float
    base: str


def encode_part(tags: dict[str, str], against: bool) -> _PartCode:
    """One OSM piece's tags as a feature vector (module docstring) and its hidden cost terms."""
    x = np.zeros(len(PART_FEATURES))
    col = _PART_COL

    highway = tags.get("highway")
    base, link = _base_class(highway) if highway else ("", False)
    if highway is None:
        x[col["highway_missing"]] = 1
    elif base in HIGHWAYS:
        x[col[f"highway_{base}"]] = 1
    else:
        x[col["highway_other"]] = 1
    x[col["highway_link"]] = float(link)

    has = {}
    parsed = {}
    for key, name, parse, scale in (
        ("lanes", "lanes", _number, 1.0),
        ("maxspeed", "maxspeed_50kmh", parse_maxspeed, 50.0),
        ("width", "width_10m", _number, 10.0),
    ):
        raw = tags.get(key)
        value = parse(raw) if raw is not None else None
        prefix = name.split("_")[0]
        if raw is None:
            x[col[f"{prefix}_missing"]] = 1
        elif value is None:
            x[col[f"{prefix}_unparsed"]] = 1
        else:
            x[col[name]] = value / scale
        has[name] = value is not None
        parsed[key] = value

    factors = []
    surface = tags.get("surface")
    if surface is None:
        x[col["surface_missing"]] = 1
    else:
        for part in surface.split(";"):
            p = part.strip().lower()
            x[col[f"surface_{p}" if p in SURFACES else "surface_other"]] = 1
            factors.append(SURFACE_FACTOR.get(p, OTHER_SURFACE_FACTOR))

    oneway = tags.get("oneway")
    ow = (oneway or "").strip().lower()
    if oneway is None:
        x[col["oneway_tag_missing"]] = 1
    elif ow in ("yes", "true", "1"):
        x[col["oneway_tag_yes"]] = 1
    elif ow in ("no", "false", "0"):
        x[col["oneway_tag_no"]] = 1
    elif ow in ("-1", "reverse"):
        x[col["oneway_tag_reverse"]] = 1
    else:
        x[col["oneway_tag_other"]] = 1
    x[col["against_drawing"]] = float(against)

    lit = tags.get("lit")
    x[col["lit_missing" if lit is None else (f"lit_{lit}" if lit in LIT_VALUES else "lit_other")]] = 1
    for key in ("bridge", "tunnel"):
        value = tags.get(key)
        if value is None:
            x[col[f"{key}_missing"]] = 1
        else:
            x[col[key]] = float(value != "no")
    junction = tags.get("junction")
    if junction is None:
        x[col["junction_missing"]] = 1
    else:
        x[col["junction_roundabout" if junction in ("roundabout", "circular") else "junction_other"]] = 1
    for key, value in tags.items():
        if key not in EXPLICIT_KEYS and not ignored_key(key):
            x[col[f"tag_hash_{_bucket(key, value)}"]] = 1

    limit = parsed["maxspeed"]
    return _PartCode(
        x=x,
        has=has,
        class_speed=CLASS_SPEED.get(base, OTHER_SPEED) * (LINK_FACTOR if link else 1.0),
        limit=limit if limit is not None and limit > 0 else None,
        lanes=parsed["lanes"] if parsed["lanes"] is not None and parsed["lanes"] > 0 else None,
        surface_factor=min(factors) if factors else MISSING_SURFACE_FACTOR,
        sensitivity=CONGESTION_SENSITIVITY.get(base, OTHER_SENSITIVITY),
        probe_rate=PROBE_RATE.get(base, OTHER_PROBE_RATE),
        base=base,
    )


@dataclass(frozen=True)
class SegmentAttributes:
    """Per directed segment: the static encoded features and the hidden model's static terms.

    The drive time under congestion c is ``3.6 * (pace + pace_c * c)`` seconds: ``pace`` sums
    length / free speed over the segment's parts, ``pace_c`` the same times each part's
    congestion sensitivity (both already divided by the static per-segment factor).
    """

    features: np.ndarray  # (S, len(STATIC_EDGE_FEATURES)) float32
    pace: np.ndarray  # (S,) hours * km/h ... i.e. metres / (km/h)
    pace_c: np.ndarray  # (S,)
    probe_rate: np.ndarray  # (S,)
    signals: np.ndarray  # (S,) signals on the segment + at its head
    crossings: np.ndarray  # (S,)
    give_way: np.ndarray  # (S,) on the segment + at its head


def encode_segments(net: RoadNetwork, seed: int) -> SegmentAttributes:
    """Encode every directed segment (length-weighted over its parts) and its static cost terms."""
    S = net.num_segments
    seg_col = {name: i for i, name in enumerate(SEGMENT_FEATURES)}
    X = np.zeros((S, len(STATIC_EDGE_FEATURES)), dtype=np.float32)
    pace = np.zeros(S)
    pace_c = np.zeros(S)
    probe_rate = np.zeros(S)
    head_signals = net.node_signals[net.seg_v]
    head_give_way = net.node_give_way[net.seg_v]
    pairs = set(zip(net.seg_u.tolist(), net.seg_v.tolist(), strict=True))
    static = np.exp(STATIC_NOISE * np.random.default_rng(np.random.SeedSequence([seed, 0x5E6])).standard_normal(S))
    numeric = [(_PART_COL[name], name) for name in _NUMERIC]
    for s in range(S):
        u, v = int(net.seg_u[s]), int(net.seg_v[s])
        length = float(net.seg_length[s])
        oneway_effective = (v, u) not in pairs
        row = X[s]
        row[seg_col["length_100m"]] = length / 100.0
        row[seg_col["log_length_m"]] = math.log1p(length)
        row[seg_col["straightness"]] = net.seg_straight[s]
        row[seg_col["osm_pieces_10"]] = len(net.seg_parts[s]) / 10.0
        row[seg_col["oneway_effective"]] = float(oneway_effective)
        row[seg_col["signals_on_segment"]] = net.seg_signals[s]
        row[seg_col["crossings_on_segment"]] = net.seg_crossings[s]
        row[seg_col["give_way_on_segment"]] = net.seg_give_way[s]
        row[seg_col["head_signals"]] = float(head_signals[s])
        row[seg_col["head_crossing"]] = float(net.node_crossing[v])
        row[seg_col["head_give_way"]] = float(head_give_way[s])
        row[seg_col["tail_signals"]] = float(net.node_signals[u])

        codes = [encode_part(p.tags, p.against) for p in net.seg_parts[s]]
        w = np.array([p.length for p in net.seg_parts[s]])
        w = w / w.sum()
        part_x = (w[:, None] * np.stack([c.x for c in codes])).sum(axis=0)
        for j, name in numeric:  # mean over the parts that have a value
            wj = np.array([wi if c.has[name] else 0.0 for wi, c in zip(w, codes, strict=True)])
            part_x[j] = float((wj * np.array([c.x[j] for c in codes])).sum() / wj.sum()) if wj.sum() > 0 else 0.0
        row[len(SEGMENT_FEATURES) :] = part_x

        for part, c in zip(net.seg_parts[s], codes, strict=True):
            limit = c.limit if c.limit is not None else c.class_speed
            total_lanes = c.lanes if c.lanes is not None else CLASS_LANES.get(c.base, 2.0)
            lanes_dir = max(1.0, total_lanes if oneway_effective else total_lanes / 2.0)
            free = math.sqrt(c.class_speed * limit) * lanes_dir**LANE_EXPONENT * c.surface_factor
            pace[s] += part.length / free
            pace_c[s] += part.length * c.sensitivity / free
        probe_rate[s] = float(np.dot(w, [c.probe_rate for c in codes]))
    return SegmentAttributes(
        features=X,
        pace=pace / static,
        pace_c=pace_c / static,
        probe_rate=probe_rate,
        signals=net.seg_signals + head_signals.astype(np.int64),
        crossings=net.seg_crossings.copy(),
        give_way=net.seg_give_way + head_give_way.astype(np.int64),
    )


def travel_time(attrs: SegmentAttributes, seg: np.ndarray, congestion: np.ndarray) -> np.ndarray:
    """Hidden travel time (s) of segments ``seg`` under ``congestion`` (module docstring)."""
    t = 3.6 * (attrs.pace[seg] + attrs.pace_c[seg] * congestion)
    t = t + attrs.signals[seg] * (SIGNAL_DELAY[0] + SIGNAL_DELAY[1] * congestion)
    t = t + attrs.crossings[seg] * CROSSING_DELAY + attrs.give_way[seg] * GIVE_WAY_DELAY
    return np.maximum(t, 0.1)


def congestion_field(points: np.ndarray, box_points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random smooth congestion field evaluated at ``points`` (module docstring)."""
    lo = box_points.min(axis=0) - CONGESTION_MARGIN
    hi = box_points.max(axis=0) + CONGESTION_MARGIN
    level = rng.uniform(*CONGESTION_LEVEL)
    centres = rng.uniform(lo, hi, size=(CONGESTION_BUMPS, 2))
    widths = rng.uniform(*CONGESTION_WIDTH, size=CONGESTION_BUMPS)
    amps = rng.uniform(*CONGESTION_AMPLITUDE, size=CONGESTION_BUMPS)
    d2 = ((points[:, None, :] - centres[None, :, :]) ** 2).sum(axis=-1)
    return level + (amps * np.exp(-d2 / (2.0 * widths**2))).sum(axis=1)
