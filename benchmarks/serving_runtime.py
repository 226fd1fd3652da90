"""What one signature call costs in-process: the SavedModel run as TF Serving runs it (TF1 loader + Session,
what the server does) against the restored ``tf.function`` (``tf.saved_model.load``), same inputs, calls
interleaved so that a busy machine slows both alike.

    python benchmarks/serving_runtime.py                        # test models built here (says which)
    python benchmarks/serving_runtime.py --calls 500

Prints the median and p90 microseconds per call for each model and runtime, and the ratio.

With ``--recommender-run RUN --export DIR`` it instead breaks down where a ScaNN recommender export's time
goes, one query at a time: numpy exact search, ScaNN's pybind searcher and its TF op (in-process, same
parameters, over the same candidate embeddings), the query tower alone, the in-process module, the export
through ``tf.saved_model.load`` and through the server's Session, and the server's request decoding and
response encoding (REST JSON and gRPC TensorProto)::

    python benchmarks/serving_runtime.py --recommender-run runs/rec --export models/recommender_scann/1 \
        --embeddings items.npz
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _inputs(name: str):
    if "recommender" in name:
        return {"history": np.array([["item001", "item002", "item010", ""]], dtype=object)}
    if "half_plus_two" in name:
        return {"x": np.array([[1.0]], np.float32)}
    return {"brief": np.array([b"waves at sunset"], dtype=object), "cover": np.array([b""], dtype=object),
            "frames": np.array([[b"", b""]], dtype=object)}


def _timed(stages, rounds: int) -> dict:
    """Median and p90 microseconds of each ``name -> fn()``, the stages interleaved round by round (a busy
    machine slows all alike)."""
    for fn in stages.values():
        fn()
    times = {name: [] for name in stages}
    for _ in range(rounds):
        for name, fn in stages.items():
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    return {name: (float(np.median(v) * 1e6), float(np.percentile(v, 90) * 1e6)) for name, v in times.items()}


def _op_profile(export_dir: str, history: np.ndarray, runs: int) -> dict:
    """The export's serving_default in a Session with full tracing: per run, the executor's time in ScaNN's
    ops (``Scann>...``), the node executions, and the sum of every op's time (tracing inflates both)."""
    import tensorflow as tf
    from tensorflow.core.protobuf import config_pb2

    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        with graph.as_default():
            meta = tf.compat.v1.saved_model.load(session, [tf.saved_model.SERVING], export_dir)
        sig = meta.signature_def["serving_default"]
        options = config_pb2.CallableOptions(feed=[sig.inputs["history"].name],
                                             fetch=[sig.outputs[k].name for k in sorted(sig.outputs)])
        options.run_options.trace_level = config_pb2.RunOptions.FULL_TRACE
        fn = session._make_callable_from_options(options)  # noqa: SLF001 - as the server makes its callables
        fn(history)
        scann_us = all_us = nodes = 0.0
        for _ in range(runs):
            metadata = config_pb2.RunMetadata()
            fn(history, run_metadata=metadata)
            for device in metadata.step_stats.dev_stats:
                for node in device.node_stats:
                    nodes += 1
                    all_us += node.all_end_rel_micros
                    if node.timeline_label.split(" = ")[-1].startswith("Scann>"):  # the op type, not a caller
                        scann_us += node.all_end_rel_micros
    return {"scann_ops_us": round(scann_us / runs, 1), "all_ops_us": round(all_us / runs, 1),
            "nodes": int(nodes / runs)}


def scann_breakdown(run_dir: str, export_dir: str, embeddings, calls: int, batch_sizes=(1, 32, 256)) -> dict:
    """Where one query's time goes in the ScaNN recommender export (module docstring)."""
    import json as _json

    import scann
    import tensorflow as tf
    from google.protobuf import json_format  # noqa: F401  (imported by the server too)
    from tensorflow_serving.apis import predict_pb2

    from retrieval.export import build_module
    from retrieval.indexes import scann_params_for
    from retrieval.model import embed_queries
    from retrieval.rundir import load_run
    from serving.grpc_server import tensor_protos_to_arrays
    from serving.limits import Limits
    from serving.model_manager import ServableVersion
    from serving.tensor_json import decode_request, encode_response, loads
    from serving.tensor_proto import array_to_proto

    meta = _json.load(open(os.path.join(export_dir, "assets.extra", "recommender.json"), encoding="utf-8"))
    run = load_run(run_dir)
    module = build_module(run, "scann", meta["k"], embeddings, meta["max_history"])  # as the exporter built it
    n, index_k = len(module.catalog_ids), module.index_k
    candidates = np.asarray(module.candidate_embeddings, np.float32)
    params = module.scann_params or scann_params_for(n, index_k)
    history = np.array([module.catalog_ids[:5].tolist()], dtype=object)
    recent = tf.constant(history[:, -module.max_history:].astype(str))
    tower = tf.function(lambda h: embed_queries(module.query_tower, module.content, h))
    query = tower(recent).numpy()
    searcher = (scann.scann_ops_pybind.builder(candidates, index_k, "dot_product")
                .tree(num_leaves=min(params.num_leaves, n), num_leaves_to_search=min(params.num_leaves_to_search, n),
                      training_iterations=params.training_iterations, training_sample_size=n)
                .score_ah(params.dimensions_per_block).reorder(params.num_reordering_candidates or index_k).build())
    index_call = tf.function(lambda q: module.index(q, k=index_k))
    query_t = tf.constant(query)
    loaded = tf.saved_model.load(export_dir).signatures["serving_default"]
    servable = ServableVersion("recommender_scann", 1, export_dir)
    servable.load(None)
    signature = servable.signature("serving_default")

    # The export's two parts saved alone (the same objects), each run through the server's Session: the
    # ScaNN index (query embedding -> top index_k) and the query tower (history -> query embedding).
    class Part(tf.Module):
        def __init__(self, fn, spec):
            super().__init__()
            self.parts = (module.index, module.query_tower, module.content)
            self.serve = tf.function(fn, input_signature=[spec])

    parts_dir = tempfile.mkdtemp(prefix="scann-parts-")
    part_sigs, part_fns = {}, {}
    for key, fn, spec in (
            ("index", lambda q: dict(zip(("scores", "ids"), module.index(q, k=index_k))),
             tf.TensorSpec([None, query.shape[1]], tf.float32, name="query")),
            ("tower", lambda h: {"query": embed_queries(module.query_tower, module.content, h)},
             tf.TensorSpec([None, None], tf.string, name="history"))):
        part = Part(fn, spec)
        path = os.path.join(parts_dir, key)
        tf.saved_model.save(part, path, signatures={"serving_default": part.serve.get_concrete_function()})
        part_servable = ServableVersion(key, 1, path)
        part_servable.load(None)
        part_sigs[key] = part_servable.signature("serving_default")
        part_fns[key] = tf.saved_model.load(path).signatures["serving_default"]
    query_arrays = {"query": query}
    recent_arrays = {"history": history[:, -module.max_history:].astype(bytes).astype(object)}
    arrays = {"history": history.astype(bytes).astype(object)}
    body = _json.dumps({"instances": [history[0].tolist()]}).encode()
    outputs = signature(arrays)
    request = predict_pb2.PredictRequest()
    request.inputs["history"].CopyFrom(array_to_proto(arrays["history"]))
    limits = Limits()

    def grpc_encode():
        response = predict_pb2.PredictResponse()
        for name, value in outputs.items():
            array_to_proto(value, response.outputs[name])
        return response.SerializeToString()

    stages = {
        "numpy exact (matmul + argpartition)": lambda: np.argpartition(-(candidates @ query[0]), index_k)[:index_k],
        "ScaNN pybind search (1 query)": lambda: searcher.search(query[0], final_num_neighbors=index_k),
        "ScaNN pybind search_batched_parallel ([1, d])": lambda: searcher.search_batched_parallel(
            query, final_num_neighbors=index_k),
        "ScaNN TF op in tf.function (in-process TFRS layer)": lambda: index_call(query_t)[1].numpy(),
        "ScaNN index alone saved, tf.saved_model.load signature": lambda: part_fns["index"](query=query_t)[
            "ids"].numpy(),
        "ScaNN index alone saved, server Session callable": lambda: part_sigs["index"](query_arrays),
        "query tower alone (tf.function)": lambda: tower(recent).numpy(),
        "query tower alone saved, server Session callable": lambda: part_sigs["tower"](recent_arrays),
        "in-process module.recommend (tf.function)": lambda: module.recommend(tf.constant(history.astype(str)))[
            "item_ids"].numpy(),
        "export, tf.saved_model.load signature": lambda: loaded(history=tf.constant(history.astype(str)))[
            "item_ids"].numpy(),
        "export, server Session callable": lambda: signature(arrays),
        "REST: parse JSON body -> arrays": lambda: decode_request(loads(body, limits), signature, limits),
        "REST: outputs -> JSON text": lambda: _json.dumps(encode_response(outputs, True)),
        "gRPC: TensorProto -> arrays": lambda: tensor_protos_to_arrays(request.inputs, signature, limits),
        "gRPC: outputs -> TensorProto bytes": grpc_encode,
    }
    rows = _timed(stages, calls)
    profile = _op_profile(export_dir, arrays["history"], max(20, calls // 10))
    batched = {}
    rng = np.random.default_rng(0)
    for size in batch_sizes:
        queries = np.repeat(query, size, axis=0) + rng.normal(0, 1e-3, (size, query.shape[1])).astype(np.float32)
        histories = {"history": np.repeat(arrays["history"], size, axis=0)}
        timed = _timed({"pybind": lambda: searcher.search_batched(queries, final_num_neighbors=index_k),
                        "session": lambda: signature(histories)}, max(10, calls // size))
        batched[size] = {name: round(us / size, 1) for name, (us, _) in timed.items()}
    servable.drain_and_unload(1)
    shutil.rmtree(parts_dir, ignore_errors=True)
    return {"op_profile": profile, "items": n, "index_k": index_k, "scann": {"leaves": params.num_leaves,
                                                      "search": params.num_leaves_to_search,
                                                      "reorder": params.num_reordering_candidates},
            "stages_us": {k: [round(a, 1), round(b, 1)] for k, (a, b) in rows.items()},
            "per_query_us_by_batch": batched}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="calls per model and runtime (default 300)")
    parser.add_argument("--recommender-run", help="a recommender run: break down its ScaNN export (with --export)")
    parser.add_argument("--export", help="the run's ScaNN export, MODELS/recommender_scann/VERSION")
    parser.add_argument("--embeddings", help="the item-embedding file the export added (its --embeddings)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.recommender_run:
        if not args.export:
            parser.error("--recommender-run needs --export MODELS/recommender_scann/VERSION")
        import serving  # noqa: F401
        from serving.model_manager import import_custom_ops

        import_custom_ops()
        result = scann_breakdown(args.recommender_run, args.export, args.embeddings, args.calls)
        width = max(len(k) for k in result["stages_us"])
        numpy_us = result["stages_us"]["numpy exact (matmul + argpartition)"][0]
        for name, (median, p90) in result["stages_us"].items():
            print(f"{name:{width}s} {median:9.1f} us  p90 {p90:9.1f}  ({numpy_us / median:6.1f}x numpy)")
        profile = result["op_profile"]
        print(f"inside the export's Session (step stats): ScaNN ops {profile['scann_ops_us']} us of "
              f"{profile['all_ops_us']} us of op time per run (traced), {profile['nodes']} node executions")
        for size, row in result["per_query_us_by_batch"].items():
            print(f"batch {size:4d}: pybind {row['pybind']:8.1f} us/query  server Session {row['session']:8.1f} us/query")
        print(json.dumps(result))
        return 0
    import serving  # noqa: F401  (the project's Keras switch before TensorFlow)
    import tensorflow as tf

    from serving.model_manager import ServableVersion, import_custom_ops
    from tests.serving_fixtures import build_half_plus_two, build_toy_classifier, build_toy_recommender

    import_custom_ops()
    base = tempfile.mkdtemp(prefix="runtime-")
    paths = {"half_plus_two (TF1 graph)": build_half_plus_two(base),
             "toy_classifier (string ops)": build_toy_classifier(base),
             "toy_recommender (hash table, brute force)": build_toy_recommender(base, num_items=10_000, dim=64),
             "toy_recommender_scann (ScaNN index)": build_toy_recommender(base, name="scann", num_items=10_000,
                                                                          dim=64, scann=True)}
    rows = {}
    for name, path in paths.items():
        servable = ServableVersion(name, 1, path)
        servable.load(None)
        session_sig = servable.signature("serving_default")
        function = tf.saved_model.load(path).signatures["serving_default"]
        inputs = _inputs(name)
        feed = {k: tf.constant(v) for k, v in inputs.items()}
        session_sig(inputs), function(**feed)  # first calls build what they build
        times = {"session": [], "tf.function": []}
        for _ in range(args.calls):
            started = time.perf_counter()
            session_sig(inputs)
            times["session"].append(time.perf_counter() - started)
            started = time.perf_counter()
            {k: v.numpy() for k, v in function(**feed).items()}
            times["tf.function"].append(time.perf_counter() - started)
        stats = {k: (float(np.median(v) * 1e6), float(np.percentile(v, 90) * 1e6)) for k, v in times.items()}
        rows[name] = {"session_us": round(stats["session"][0], 1), "session_p90_us": round(stats["session"][1], 1),
                      "tf_function_us": round(stats["tf.function"][0], 1),
                      "tf_function_p90_us": round(stats["tf.function"][1], 1),
                      "tf_function_over_session": round(stats["tf.function"][0] / stats["session"][0], 2)}
        servable.drain_and_unload(1)
        print(f"{name:45s} session {rows[name]['session_us']:8.1f} us  tf.function "
              f"{rows[name]['tf_function_us']:8.1f} us  ({rows[name]['tf_function_over_session']}x)", flush=True)
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
