"""``xmark verify`` (black-box ownership test + evidence bundle, or ``--replay``) and
``xmark serve-model`` (expose a checkpoint as the suspect HTTP API)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from xmark_core.errors import DataError, XMarkError

DEFAULT_PORT = 8765


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify", help="test whether a suspect model was trained on the watermarked release",
        description="Query a suspect (checkpoint or http(s):// API) with held-out non-target images and "
                    "their watermarked versions, run the ownership test and write evidence.json + "
                    "report.html. With --replay, re-run a recorded verification and check every number.")
    p.add_argument("--suspect", help="suspect checkpoint file or API base URL (http://host:port)")
    p.add_argument("--surrogate", help="owner's surrogate classifier checkpoint")
    p.add_argument("--generator", help="owner's watermark generator checkpoint (G.pt)")
    p.add_argument("--owner-record", help="owner_record.json written by `xmark embed`")
    p.add_argument("--data", help="held-out data spec (folder, CheXpert csv, phantom:N:SIZE:SEED); "
                                   "non-target images not listed as released are queried")
    p.add_argument("--target", help="target class (name or index; default: the owner record's)")
    p.add_argument("--out", help="output folder for evidence.json and report.html")
    p.add_argument("--m", type=int, default=100, help="number of paired queries (default 100)")
    p.add_argument("--tau", type=float, default=0.2, help="margin on the score rise (default 0.2)")
    p.add_argument("--alpha", type=float, default=0.01, help="level: largest false-accusation rate (default 0.01)")
    p.add_argument("--test", choices=["ttest", "sequential", "label"], default="ttest",
                   help="ttest: DVBW paired t-test (default); sequential: anytime-valid betting test that "
                        "stops as soon as the evidence suffices; label: exact test for labels-only suspects")
    p.add_argument("--seed", type=int, default=0, help="seed of the query draw (recorded)")
    p.add_argument("--batch-size", type=int, default=20, help="query images per request round")
    p.add_argument("--query-gain", type=float, default=None,
                   help="strength of the mark on the (never released) query images "
                        "(default: the library's, VerifyConfig.query_gain)")
    # A literal: the parser stays torch-free for a fast --help (a test pins it to QUERY_CHOICES).
    p.add_argument("--queries", choices=("boundary", "random", "proxy"), default=None,
                   help="which held-out images to query: 'boundary' = the m the owner's surrogate "
                        "scores closest to the target class, 'random' = a seeded draw, 'proxy' = the m "
                        "on which the owner's proxy (--proxy) answers the mark most "
                        "(default: the library's, VerifyConfig.queries)")
    p.add_argument("--proxy", metavar="CHECKPOINT", action="append",
                   help="the owner's proxy for proxy queries (implies --queries proxy): a classifier the owner "
                        "trained on its own release (`xmark train-classifier --data RELEASE`), never the "
                        "suspect; recorded in the evidence. Repeat it for several proxies, e.g. trained at "
                        "different input sizes: their mean rise chooses the queries")
    p.add_argument("--specificity", type=float, default=None, metavar="DEGREES",
                   help="key-specificity check: also query the owner's mark with its carrier turned by "
                        "-/+DEGREES and claim only if the owner's own mark is answered more strongly than "
                        "both (refuses keys that merely lie near the learned one; 0: off; default: the "
                        "library's, VerifyConfig.specificity; measured: docs/architecture.md, 5)")
    p.add_argument("--check-gain", type=float, default=None, metavar="GAIN",
                   help="strength of the marks in the key-specificity check (the owner's and the turned "
                        "ones; the main test keeps --query-gain). Lower than the query gain, the check's "
                        "answers are off their ceiling and the sequential test decides sooner "
                        "(default: the query gain; VerifyConfig.check_gain)")
    p.add_argument("--labels-only", action="store_true", help="use only the suspect's top-1 labels")
    p.add_argument("--classes", help="comma-separated class names, if the suspect does not state them")
    p.add_argument("--input-size", type=int, help="suspect input size, if it does not state it")
    p.add_argument("--timeout", type=float, default=30.0, help="HTTP timeout per request, seconds")
    p.add_argument("--retries", type=int, default=3, help="HTTP retries after transient failures")
    p.add_argument("--rate-limit", type=float, help="at most this many HTTP requests per second")
    p.add_argument("--pdf", action="store_true", help="also write report.pdf")
    p.add_argument("--replay", metavar="EVIDENCE", help="re-run the verification recorded in evidence.json")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.set_defaults(func=_verify_main)

    s = sub.add_parser(
        "serve-model", help="expose a checkpoint as the suspect HTTP API (GET /info, POST /predict)",
        description="Serve a classifier (or segmenter) checkpoint over HTTP in the format `xmark verify "
                    "--suspect URL` queries. Binds 127.0.0.1 unless --host says otherwise.")
    s.add_argument("checkpoint")
    s.add_argument("--port", type=int, default=DEFAULT_PORT)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--labels-only", action="store_true", help="answer with top-1 labels only")
    s.add_argument("--model-id", help="name reported by /info (default: file name and hash)")
    s.add_argument("--max-batch", type=int, default=256)
    s.set_defaults(func=_serve_main)


def _serve_main(args: argparse.Namespace) -> int:
    from xmark_core.verify.server import serve, service_from_checkpoint

    svc = service_from_checkpoint(args.checkpoint, labels_only=args.labels_only,
                                  model_id=args.model_id, max_batch=args.max_batch)
    print(f"serving {svc.model_id} ({svc.task}, {svc.output}) on http://{args.host}:{args.port}",
          file=sys.stderr, flush=True)
    serve(svc, host=args.host, port=args.port)
    return 0


def _need(args: argparse.Namespace, *names: str) -> None:
    missing = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) is None]
    if missing:
        raise XMarkError(f"xmark verify needs {', '.join(missing)}")


def _resolve_target(target: str | None, record: dict[str, Any], suspect_classes: list[str],
                    data_classes: list[str]) -> tuple[int, int, str]:
    """(index in the suspect's classes, index in the data's classes, name).

    The target defaults to the one the owner record commits to; another one is refused
    (testing classes until one "works" would void the level alpha)."""
    from xmark_core.cli.embed_cmd import resolve_class

    committed = record.get("target_name")
    name = committed if target is None else suspect_classes[resolve_class(suspect_classes, str(target))]
    if name is None:
        raise XMarkError("the owner record does not name the target class; pass --target")
    if committed is not None and name != committed:
        raise DataError(f"the owner record commits to target {committed!r}, not {name!r}")
    if name not in suspect_classes:
        raise DataError(f"target {name!r} is not one of the suspect's classes {suspect_classes}")
    if name not in data_classes:
        raise DataError(f"target class {name!r} is not a class of the data ({data_classes}); the suspect's "
                        "and the data's class names must agree")
    return suspect_classes.index(name), data_classes.index(name), name


def _open_suspect(spec: str, args: argparse.Namespace, recorded: dict[str, Any] | None = None):
    from xmark_core.verify.suspects import is_url, open_suspect

    rec = recorded or {}
    classes = args.classes.split(",") if args.classes else rec.get("classes")
    input_size = args.input_size or rec.get("input_size")
    labels = args.labels_only or rec.get("output") == "label"
    http = {"timeout": args.timeout, "retries": args.retries, "rate_limit": args.rate_limit}
    return open_suspect(spec, classes=classes, input_size=input_size, labels=labels,
                        **(http if is_url(spec) else {}))


def _open_proxy(paths: list[str] | None):
    """The owner's proxy for proxy queries: one checkpoint, or the mean of several."""
    from xmark_core.verify.suspects import CheckpointSuspect, mean_or_one

    if not paths:
        raise XMarkError("--queries proxy needs --proxy: a classifier the owner trained on its own release "
                         "(`xmark train-classifier --data RELEASE`)")
    return mean_or_one([CheckpointSuspect(p) for p in paths])


def _recorded_proxy_paths(recorded: dict[str, Any] | None) -> list[str]:
    """Where the evidence says its proxy (or each of its proxies) was read from."""
    rec = recorded or {}
    members = rec.get("members") if rec.get("kind") == "mean" else [rec]
    return [m["location"] for m in members if m.get("location")]


def _run(args: argparse.Namespace, suspect_spec: str, surrogate: str, generator: str, data_spec: str,
         target: str | None, cfg, recorded_suspect: dict[str, Any] | None = None,
         recorded_proxy: dict[str, Any] | None = None):
    """Open everything, verify; return (result, suspect, evidence parts)."""
    from xmark_core.cli.progress import tqdm_progress
    from xmark_core.data.open import open_dataset
    from xmark_core.generator.model import load_marker
    from xmark_core.hashing import sha256_file
    from xmark_core.report import check_owner_record, released_ids
    from xmark_core.verify.protocol import heldout_pool, run_verification

    owner = check_owner_record(args.owner_record, generator=generator, surrogate=surrogate)
    if not owner["ok"]:
        print("xmark: WARNING: the owner record does not match its commitment or the given "
              "generator/surrogate files; the evidence will say so.", file=sys.stderr)
    record = json.loads(Path(args.owner_record).read_text())
    suspect = _open_suspect(suspect_spec, args, recorded_suspect)
    marker = load_marker(surrogate, generator)
    # Mark exactly as at embedding time (the record stores the marker's settings).
    marker.work_size = (record.get("marker") or {}).get("work_size", marker.work_size)
    ds = open_dataset(data_spec)
    t_suspect, t_data, name = _resolve_target(target, record, suspect.classes, list(ds.classes))
    exclude = released_ids(args.owner_record)
    images, ids = heldout_pool(ds, t_data, exclude)
    proxy = _open_proxy(args.proxy or _recorded_proxy_paths(recorded_proxy)) if cfg.queries == "proxy" else None
    with tqdm_progress("verify", "query") as prog:
        result = run_verification(suspect, marker, images, ids, t_suspect, cfg, progress=prog, proxy=proxy)
    ident = getattr(marker, "identity", dict)()
    marker_info = {
        "surrogate": str(Path(surrogate).resolve()), "surrogate_sha256": sha256_file(surrogate),
        "generator": str(Path(generator).resolve()), "generator_sha256": sha256_file(generator),
        "identity": json.loads(json.dumps(ident, default=str)),
    }
    data = {"spec": data_spec, "classes": list(ds.classes), "target_in_data": t_data,
            "excluded_released": len(exclude)}
    return result, suspect, owner, marker_info, data


def _verify_main(args: argparse.Namespace) -> int:
    if args.replay:
        return _replay_main(args)
    from xmark_core.report import build_evidence, write_bundle
    from xmark_core.verify.protocol import VerifyConfig

    _need(args, "suspect", "surrogate", "generator", "owner_record", "data", "out")
    if args.proxy and args.queries not in (None, "proxy"):
        raise XMarkError(f"--proxy chooses proxy queries; it has no use with --queries {args.queries}. "
                         "Drop one of them")
    queries = "proxy" if args.proxy else args.queries
    try:
        gain = {k: v for k, v in (("query_gain", args.query_gain), ("queries", queries),
                                  ("specificity", args.specificity), ("check_gain", args.check_gain))
                if v is not None}
        cfg = VerifyConfig(m=args.m, tau=args.tau, alpha=args.alpha, test=args.test, seed=args.seed,
                           batch_size=args.batch_size, **gain)
    except ValueError as e:
        raise XMarkError(str(e)) from e
    result, suspect, owner, marker_info, data = _run(
        args, args.suspect, args.surrogate, args.generator, args.data, args.target, cfg)
    ev = build_evidence(result, suspect.identity(), owner=owner, marker=marker_info, data=data,
                        command=["xmark", *sys.argv[1:]])
    paths = write_bundle(ev, args.out, pdf=args.pdf)
    summary = {"decision": result.decision, "p_value": result.p_value, "delta_p": result.delta_p,
               "wsr": result.wsr, "n_queries": result.n_queries, "test": result.test,
               "owner_ok": owner["ok"], "verdict": ev["verdict"], **{k: str(v) for k, v in paths.items()}}
    if args.json:
        from xmark_core.cli import emit_json

        emit_json(summary)
    else:
        print(ev["verdict"])
        print(f"evidence: {paths['evidence']}\nreport:   {paths['html']}")
    return 0


def _replay_main(args: argparse.Namespace) -> int:
    from xmark_core.atomic import atomic_write_json
    from xmark_core.report import load_evidence
    from xmark_core.verify.protocol import VerifyConfig, compare_logs

    _need(args, "owner_record")
    ev = load_evidence(args.replay)
    cfg = VerifyConfig.from_recorded(ev["parameters"])
    if args.proxy and cfg.queries != "proxy":
        raise XMarkError(f"the evidence used {cfg.queries} queries; --proxy has no use in its replay")
    mk = ev.get("marker") or {}
    inputs = {"suspect": args.suspect or (ev.get("suspect") or {}).get("location"),
              "surrogate": args.surrogate or mk.get("surrogate"), "generator": args.generator or mk.get("generator"),
              "data": args.data or (ev.get("data") or {}).get("spec")}
    missing = [f"--{k}" for k, v in inputs.items() if not v]
    if missing:
        raise XMarkError(f"the evidence does not say where its {', '.join(m[2:] for m in missing)} "
                         f"came from; pass {' '.join(missing)}")
    recorded_proxy = ((ev.get("data") or {}).get("query_choice") or {}).get("proxy")
    result, suspect, owner, _, _ = _run(
        args, inputs["suspect"], inputs["surrogate"], inputs["generator"], inputs["data"],
        ev["result"]["target_name"], cfg, recorded_suspect=ev["suspect"], recorded_proxy=recorded_proxy)
    check = compare_logs(ev["log"], result.log)
    rec = ev["result"]
    numbers = {k: (rec[k], getattr(result, k)) for k in ("p_value", "delta_p", "wsr", "statistic")}
    for k, (a, b) in numbers.items():
        if not _close(a, b):
            check["problems"].append(f"{k}: recorded {a}, replayed {b}")
    if rec["target"] != result.target or ev["decision"] != result.decision:
        check["problems"].append(f"decision: recorded {ev['decision']}, replayed {result.decision}")
    if ev["data"].get("pool_ids_sha256") != result.pool["ids_sha256"]:
        check["problems"].append("the held-out pool differs from the recorded one (other images or order)")
    sus_now, sus_then = suspect.identity().get("sha256"), ev["suspect"].get("sha256")
    if sus_now != sus_then:
        check["problems"].append(f"suspect hash {sus_now} differs from the recorded {sus_then}")
    if recorded_proxy and (result.pool.get("proxy") or {}).get("sha256") != recorded_proxy.get("sha256"):
        check["problems"].append(f"the proxy differs from the recorded one (sha256 {recorded_proxy.get('sha256')})")
    if owner["commitment"] != (ev.get("owner") or {}).get("commitment"):
        check["problems"].append("the owner record's commitment differs from the recorded one")
    if not owner["ok"]:
        check["problems"].append("the owner record does not match its commitment or the generator/surrogate")
    check["match"] = not check["problems"]
    report = {"replay_of": str(Path(args.replay).resolve()), "evidence_sha256": ev["evidence_sha256"],
              **check, "recorded": {k: a for k, (a, _) in numbers.items()},
              "replayed": {k: b for k, (_, b) in numbers.items()}, "decision": result.decision}
    if args.out:
        atomic_write_json(Path(args.out) / "replay.json", report)
    if args.json:
        from xmark_core.cli import emit_json

        emit_json(report)
    else:
        print("replay MATCHES the evidence" if check["match"] else "replay DOES NOT match the evidence:")
        for msg in check["problems"]:
            print(f"  - {msg}")
    return 0 if check["match"] else 1


def _close(a: Any, b: Any, rtol: float = 1e-6, atol: float = 1e-9) -> bool:
    if a is None or b is None:  # evidence stores NaN / inf as null
        return a is None and (b is None or not math.isfinite(b))
    return abs(a - b) <= atol + rtol * abs(a)
