"""Small ONNX graph surgery: topological sort and merging graphs by shared tensor names."""

from __future__ import annotations

from typing import Iterable, List, Set

import onnx


def toposort(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` in place so every input is produced before it is used."""
    ready: Set[str] = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: List[onnx.NodeProto] = []
    while pending:
        rest = []
        for node in pending:
            if all(i in ready for i in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            raise ValueError(f"graph has a cycle or a dangling input at {rest[0].name!r}")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


def prefix_graph(graph: onnx.GraphProto, prefix: str, keep: Iterable[str]) -> onnx.GraphProto:
    """A copy of ``graph`` whose tensor and node names, except ``keep``, start with ``prefix``."""
    keep = set(keep) | {""}
    g = onnx.GraphProto()
    g.CopyFrom(graph)

    def rn(name: str) -> str:
        return name if name in keep else prefix + name

    for node in g.node:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            raise ValueError("subgraphs are not supported by prefix_graph")
        node.name = prefix + node.name
        node.input[:] = [rn(i) for i in node.input]
        node.output[:] = [rn(o) for o in node.output]
    for t in g.initializer:
        t.name = rn(t.name)
    for vi in list(g.value_info) + list(g.input) + list(g.output):
        vi.name = rn(vi.name)
    return g
