"""Accuracy against compute for a bank: uniform majority vote (with its 95%
bootstrap band), the oracle per-problem frontier and greedy decoding, against
the average samples and the average FLOPs per problem (tokens when the
model's size is unknown)."""

from __future__ import annotations

from pathlib import Path

from collm.errors import CollmError


def plot_eval(result: dict, path: str | Path, title: str | None = None, policies: list[dict] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    uni = [result["uniform_curve"][k] for k in sorted(result["uniform_curve"], key=int)]
    g = result["greedy_point"]
    costs = [("samples", "average samples per problem", result["oracle"])]
    if result.get("params"):
        costs.append(("flops", "average FLOPs per problem", result["oracle_flops"]))
    else:
        costs.append(("tokens", "average tokens per problem (model size unknown)", result["oracle_flops"]))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3))
    for ax, (key, label, orc) in zip(axes, costs):
        x = [u[key] for u in uni]
        ax.fill_between(x, [u["lo"] for u in uni], [u["hi"] for u in uni], color="C0", alpha=0.18, lw=0)
        ax.plot(x, [u["accuracy"] for u in uni], "o-", color="C0", label="uniform majority vote (95% CI)")
        for u in uni:
            ax.annotate(f"{u['samples']}", (u[key], u["accuracy"]), textcoords="offset points", xytext=(0, -12),
                        ha="center", fontsize=7, color="C0")
        ax.plot([o[key] for o in orc], [o["accuracy"] for o in orc], "-", color="C3", lw=2,
                label="oracle per-problem frontier")
        if x[-1] > orc[-1][key]:  # past its top, more samples buy the oracle nothing
            ax.plot([orc[-1][key], x[-1]], [orc[-1]["accuracy"]] * 2, ":", color="C3", lw=1.5)
        ax.errorbar([g[key]], [g["accuracy"]], yerr=[[g["accuracy"] - g["lo"]], [g["hi"] - g["accuracy"]]],
                    fmt="s", color="k", capsize=3, label="greedy")
        for j, pol in enumerate(policies or []):
            if key in pol and "accuracy" in pol:
                ax.plot([pol[key]], [pol["accuracy"]], "D", color=f"C{2 + j}", label=pol.get("name", "policy"))
        ax.set_xscale("log", base=2 if key == "samples" else 10)
        ax.set_xlabel(label)
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(loc="lower right", fontsize=8)
    model = (result.get("model") or {}).get("name")
    fig.suptitle(title or f"{Path(result['bank'].split(' + ')[0]).name}" + (f" ({model})" if model else "")
                 + f": {result['problems']} problems, K={result['k']}, uniform = mean of {result['seeds']} seeds",
                 fontsize=10)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=120)
    except (OSError, ValueError) as e:
        raise CollmError(f"cannot write the plot {path}: {getattr(e, 'strerror', None) or e}") from None
    finally:
        plt.close(fig)
