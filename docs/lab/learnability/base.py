from h import *
import sys
X, y, Xt, yt = data()
name, seed = sys.argv[1], int(sys.argv[2])
t = time.time(); m = cached(name, X, y, seed)
print(name, "acc", evaluate(m, Xt, yt).accuracy, time.time() - t)
