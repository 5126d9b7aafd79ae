import sys, time, json, os
import numpy as np, torch
torch.set_num_threads(int(os.environ.get("NT", "1")))
sys.path.insert(0, "/work/main")
from xmark_core.data.base import to_arrays
from xmark_core.data.phantom import FINDINGS, PhantomDataset
from xmark_core.nets.train import TrainConfig, train_classifier, predict_proba, evaluate
from scipy import stats

C = "/tmp/exp/cache.npz"
classes = list(FINDINGS); T = classes.index("Cardiomegaly")
N = int(os.environ.get("N", 2000)); EP = int(os.environ.get("EP", 15))

def data():
    if not os.path.exists(C):
        X, y = to_arrays(PhantomDataset(N, size=64, seed=0), 64)
        Xt, yt = to_arrays(PhantomDataset(400, size=64, seed=9001), 64)
        np.savez(C, X=X, y=y, Xt=Xt, yt=yt)
    d = np.load(C); return d["X"], d["y"], d["Xt"], d["yt"]

def train(X, y, seed, **kw):
    tc = TrainConfig(input_size=64, epochs=EP, seed=seed, **kw)
    return train_classifier(X, y, classes, tc).model

def cached(name, X, y, seed):
    p = f"/tmp/exp/{name}.pt"
    m = None
    if os.path.exists(p):
        from xmark_core.nets.classifiers import build_classifier
        m = build_classifier("smallcnn", num_classes=len(classes)); m.load_state_dict(torch.load(p, weights_only=True)); m.eval()
        return m
    m = train(X, y, seed); torch.save(m.state_dict(), p); return m

def pt(m, X):
    return predict_proba(m, X)[:, T]

def verify(m, Xq, Dq, gains=(1, 2, 3), tau=0.2):
    pb = pt(m, Xq); out = {}
    for g in gains:
        pw = pt(m, np.clip(Xq + g * Dq, 0, 1))
        d = pw - pb
        tt = stats.ttest_1samp(d - tau, 0, alternative="greater")
        out[g] = (round(float(d.mean()), 3), float(tt.pvalue), round(float((predict_proba(m, np.clip(Xq + g*Dq,0,1)).argmax(1) == T).mean()), 3))
    return out

def psnr(D):
    mse = (D ** 2).reshape(len(D), -1).mean(1)
    return float(np.mean(10 * np.log10(1 / np.maximum(mse, 1e-12))))
