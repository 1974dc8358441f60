"""`collm report`: the comparison report of greedy, uniform best-of-N and
collm policies on one or more sample banks.

    collm report --bank BANK.jsonl [--bank MORE.jsonl] [--policy POLICY.json ...] --out DIR

Writes DIR/report.md, DIR/report.json, DIR/report.html (one self-contained
page) and the PNG figures.
"""

from __future__ import annotations

from collm.cli.options import add_allow_ragged
from collm.errors import CollmError
from collm.report import EnergyModel, build_report
from collm.report.energy import DEFAULT_FLOP_PER_JOULE, DEFAULT_GRID_GCO2_PER_KWH


def add_parser(sub):
    p = sub.add_parser("report", help="comparison report (tables, plots, fairness, energy) from sample banks",
                       description="Accuracy, FLOPs, energy, difficulty bins and fairness of greedy, uniform "
                                   "best-of-N and collm policies, replayed on sample banks. Writes Markdown, "
                                   "JSON, PNG figures and one self-contained HTML page.")
    p.add_argument("--bank", action="append", required=True, metavar="FILE",
                   help="sample bank (JSONL); repeat for one section per bank")
    p.add_argument("--policy", action="append", default=[], metavar="POLICY.json",
                   help="a saved collm allocation policy to compare (repeatable)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write the report to")
    p.add_argument("--seeds", type=int, default=20, help="replay seeds to average over (default 20)")
    p.add_argument("--model-params", type=int, default=None, metavar="N",
                   help="model parameters, when the bank's header does not say")
    p.add_argument("--dataset", default=None, help="dataset of the bank(s), when the header does not say "
                                                   "(picks the fairness groups: math500 by subject and level)")
    p.add_argument("--flop-per-joule", type=float, default=None,
                   help="hardware efficiency for the energy estimate (default 4.24e11: H100 SXM at 30%% of peak)")
    p.add_argument("--grid-gco2-per-kwh", type=float, default=None,
                   help="grid carbon intensity (default 481: world average 2023, Ember)")
    add_allow_ragged(p)
    return p


def run(args) -> int:
    if args.seeds < 1:
        raise CollmError("--seeds must be at least 1")
    if args.model_params is not None and args.model_params <= 0:
        raise CollmError("--model-params must be a positive integer")
    energy = EnergyModel(DEFAULT_FLOP_PER_JOULE if args.flop_per_joule is None else args.flop_per_joule,
                         DEFAULT_GRID_GCO2_PER_KWH if args.grid_gco2_per_kwh is None else args.grid_gco2_per_kwh)
    report = build_report(args.bank, args.policy, args.out, args.seeds, energy, args.model_params, args.dataset,
                          allow_ragged=args.allow_ragged)
    for s in report["sections"]:
        print(f"{s['dataset'] or s['bank']}: {s['problems']} problems")
        for r in s["comparison"]:
            xg = "" if r["x_greedy"] is None else f" ({r['x_greedy']:.2f}x greedy)"
            print(f"  {r['method']:<34} accuracy {100 * r['accuracy']:5.1f}%  samples {r['samples']:5.2f}  "
                  f"FLOPs/question {r['flops']:.3g}{xg}")
        for f in s["fairness"]["flags"]:
            print(f"  fairness flag: {f}")
    print(f"wrote {args.out}/report.html, report.md, report.json")
    return 0
