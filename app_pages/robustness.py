import pandas as pd
import streamlit as st

from xmark_core.app_support import cached, robustness, ui
from xmark_core.app_support.demo import SUSPECT_LABELS, default_query_choice
from xmark_core.verify.protocol import VerifyConfig, run_verification

st.title("Robustness")
st.caption(
    "An adversary may pre-process every query (resize, JPEG, blur, noise, median filter) or change "
    "the model (fine-tune it on clean data, prune channels). Apply one and verify again: what survives?"
)
marker = ui.require_marker()
bundle = ui.demo_bundle()
target = ui.target_of(marker)
if bundle is None or not bundle.suspects:
    st.info("Robustness runs on the demo suspects: load the demo bundle in the sidebar "
            "(`make models` builds it).")
    st.stop()

c1, c2, c3 = st.columns(3)
with c1:
    label = st.selectbox("Suspect", [SUSPECT_LABELS[k] for k in bundle.suspects], key="r_suspect")
    attack = st.selectbox("Attack", robustness.attack_names(), key="r_attack")
with c2:
    params: dict = {}
    if attack.startswith("resize"):
        st.caption("Queries are shrunk and enlarged back before the model sees them.")
    elif attack == "jpeg":
        params["quality"] = st.slider("JPEG quality", 10, 100, 75, 5, key="r_q")
    elif attack == "blur":
        params["sigma"] = st.slider("Blur σ (pixels)", 0.2, 4.0, 1.0, 0.1, key="r_blur")
    elif attack == "noise":
        params["sigma"] = st.slider("Noise σ (intensity)", 0.0, 0.1, 0.02, 0.005, format="%.3f", key="r_noise")
    elif attack == "median":
        params["size"] = st.select_slider("Median window", [3, 5, 7], 3, key="r_median")
    elif attack == "fine-tune":
        params["epochs"] = st.slider("Epochs", 1, 10, 2, key="r_ft_epochs")
        params["lr"] = st.select_slider("Learning rate", [1e-5, 3e-5, 1e-4, 3e-4, 1e-3], 1e-4, key="r_ft_lr")
    elif attack == "fine-prune":
        params["fraction"] = st.slider("Share of last-block channels pruned", 0.0, 0.9, 0.3, 0.05, key="r_fp")
        params["finetune_epochs"] = st.slider("Fine-tuning epochs after pruning", 0, 10, 1, key="r_fp_epochs")
    if attack in robustness.MODEL_ATTACKS:
        n_clean = st.number_input("Adversary's clean images", 100, 5000, 600, step=100, key="r_nclean")
with c3:
    m = st.number_input("Queries m", 10, 500, 60, step=10, key="r_m")
    tau = st.number_input("Margin τ", 0.0, 0.9, 0.2, 0.05, key="r_tau")
    alpha = st.number_input("Level α", 0.0001, 0.2, 0.01, 0.005, format="%.4f", key="r_alpha")
    proxy_path = bundle.proxy_for(marker)
    queries = default_query_choice(proxy_path)
    st.caption(f"Queries: {queries}, as the Verify page preselects"
               + (" (chosen by the demo owner's proxy)." if proxy_path is not None else "."))

history = st.session_state.setdefault("r_history", [])
if st.button("Attack and verify", type="primary", key="r_run"):
    with ui.guarded("The attack"):
        key = next(k for k, v in SUSPECT_LABELS.items() if v == label)
        path = bundle.suspects[key]
        suspect = cached.suspect_at(path)
        with st.status(f"Attacking: {attack} ...", expanded=True) as status:
            clean = None
            if attack in robustness.MODEL_ATTACKS:
                st.write("Rendering the adversary's clean data ...")
                clean = robustness.clean_data(int(n_clean), suspect.input_size)
            bar = st.progress(0.0)
            attacked = robustness.apply_attack(suspect, attack, params, clean,
                                               progress=lambda d, t: bar.progress(d / t, text=f"step {d}/{t}"))
            status.update(label="Verifying the attacked suspect ...")
            images, ids = cached.query_images(target, int(m), bundle.image_size, bundle.query_seed)
            cfg = VerifyConfig(m=int(m), tau=float(tau), alpha=float(alpha), test="ttest", queries=queries)
            proxy = cached.suspect_at(proxy_path) if proxy_path is not None else None
            res = run_verification(attacked.suspect, marker, images, ids, target, cfg, proxy=proxy,
                                   progress=lambda d, t: bar.progress(d / t, text=f"{d}/{t} queries"))
            status.update(label="Done", state="complete", expanded=False)
        history.append({
            "suspect": key, "attack": attacked.description, "queries": queries,
            "accuracy before": attacked.accuracy_before, "accuracy after": attacked.accuracy_after,
            "ΔP": round(res.delta_p, 3), "p-value": float(f"{res.p_value:.3g}"), "WSR": round(res.wsr, 3),
            "claim": "yes" if res.decision else "no",
        })
        (st.warning if res.decision else st.info)(res.verdict)

if history:
    st.subheader("Runs in this session")
    st.dataframe(pd.DataFrame(history), hide_index=True, key="r_table")
    if st.button("Clear", key="r_clear"):
        st.session_state["r_history"] = []
        st.rerun()
else:
    st.info("Pick an attack and press **Attack and verify**.")
