"""Evaluating a run: accuracy with its 95% interval, top-5, macro-F1, per-class precision/recall, a
confusion-matrix PNG, the same numbers with only one modality present, and the linear probe on the same
frozen features and split beside the model. Optionally stratified K-fold cross-validation."""
from __future__ import annotations

import json
import logging
import os
from typing import Dict, Optional

import numpy as np

from baseline_model.metrics import classification_report, plot_confusion_matrix, wilson_interval
from baseline_model.run import CONDITIONS, LoadedRun, load_run
from data_interface_for_model.atomic import atomic_write

logger = logging.getLogger(__name__)

#: Below this many test items an accuracy is too noisy to compare models: the report says so.
MIN_RELIABLE_ITEMS = 50
HEADLINE = ("accuracy", "top5_accuracy", "macro_f1")


def _with_interval(report: Dict) -> Dict:
    correct = int(round(report["accuracy"] * report["examples"]))
    report["accuracy_interval"] = list(wilson_interval(correct, report["examples"]))
    return report


def linear_probe_report(run: LoadedRun, split: str) -> Dict:
    """The linear probe trained on the run's training split (``C`` picked on validation), on ``split``."""
    from baseline_model.probe import fit_probe, probe_inputs

    wanted = ["train", "validation"] + ([split] if split not in ("train", "validation") else [])
    arrays = run.frozen_features(wanted)
    x = {name: probe_inputs(part) for name, part in arrays.items()}
    y = {name: part["label"].astype(int) for name, part in arrays.items()}
    probe = fit_probe(x["train"], y["train"], x.get("validation"), y.get("validation"), len(run.labels),
                      seed=run.train_config.seed)
    full = classification_report(y[split], probe.predict_proba(x[split]), run.labels)
    out = _with_interval({k: full[k] for k in ("examples",) + HEADLINE})
    out.update(C=probe.C, validation_accuracy=getattr(probe, "validation_accuracy", None))
    return out


def evaluate_run(run_dir: str, split: str = "test", json_out: Optional[str] = None,
                 run: Optional[LoadedRun] = None, cv: int = 0) -> Dict:
    """Evaluate a run on a split; write ``report.json`` (or ``json_out``) and the confusion-matrix PNG.

    ``cv`` > 1 adds stratified ``cv``-fold cross-validation over every item of the run's data (model and
    linear probe retrained on each fold) under ``report["cross_validation"]``."""
    run = run or load_run(run_dir)
    report: Dict = {"run": run_dir, "split": split, "model": run.kind.name, "labels": list(run.labels)}
    for name, presence in CONDITIONS.items():
        labels, probabilities = run.predict_split(split, presence)
        full = classification_report(labels, probabilities, run.labels)
        if name == "all":
            report.update(_with_interval(full))
            png = os.path.join(run_dir, f"confusion_matrix_{split}.png")
            plot_confusion_matrix(np.asarray(full["confusion_matrix"]), png, run.labels,
                                  title=f"{run.kind.name}, {split} split")
            report["confusion_matrix_png"] = png
        else:
            report[name] = {k: full[k] for k in HEADLINE}
    report["linear_probe"] = linear_probe_report(run, split)
    if report["examples"] < MIN_RELIABLE_ITEMS:
        report["warning"] = (f"only {report['examples']} {split} items: the accuracy is known to within "
                             f"{report['accuracy_interval'][0]:.2f}-{report['accuracy_interval'][1]:.2f} (95%); "
                             f"use more data or --cv K to compare models")
    if cv and cv > 1:
        from baseline_model.crossval import cross_validate

        report["cross_validation"] = cross_validate(run, cv)
    out = json_out or os.path.join(run_dir, "report.json")
    with atomic_write(out, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2, ensure_ascii=False)
    report["report_json"] = out
    return report


def comparison_line(report: Dict) -> str:
    """``model 0.xx [lo-hi] vs linear probe 0.yy [lo-hi] (N split items)``: the headline of an evaluation."""
    probe = report["linear_probe"]
    lo, hi = report["accuracy_interval"]
    plo, phi = probe["accuracy_interval"]
    line = (f"{report['split']} accuracy: model {report['accuracy']:.2f} [{lo:.2f}-{hi:.2f}] vs linear probe "
            f"{probe['accuracy']:.2f} [{plo:.2f}-{phi:.2f}] ({report['examples']} items, 95% intervals)")
    cv = report.get("cross_validation")
    if cv:
        m, p = cv["model"]["accuracy"], cv["linear_probe"]["accuracy"]
        line += (f"; {cv['folds']}-fold CV over {cv['items']} items: model {m['mean']:.2f} +- {m['std']:.2f} vs "
                 f"linear probe {p['mean']:.2f} +- {p['std']:.2f}")
    if "warning" in report:
        line += f"\nwarning: {report['warning']}"
    return line
