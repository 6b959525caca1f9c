"""Independent reference numbers for the label-augmentation specs (numpy + nibabel only; no brain-ldm code).

usage: label_reference.py components A.nii.gz [B.nii.gz ...]
    per file: {"labels": {label: voxels}, "components": {label: [sizes, largest first]}} (6-connected, non-zero labels)
usage: label_reference.py header A.nii.gz
    {"dtype", "shape", "sform", "qform", "sformCode", "qformCode", "sha": sha256 of the voxel bytes} as nibabel reads them
usage: label_reference.py jacobian FIELD.f32 NX NY NZ
    FIELD.f32 holds the x, y, z planes (float32, first index fastest) of a displacement field in voxels; prints
    {"min": ..., "max": ..., "nonPositive": count} of det(I + grad u) with numpy.gradient (central differences).
Prints one JSON object per call on stdout.
"""
import hashlib
import json
import sys

import nibabel as nib
import numpy as np


def components(labels):
    """Connected components per label by union-find over 6-neighbour edges (min-label hooking + pointer jumping)."""
    flat = labels.reshape(-1, order="F")
    n = flat.size
    idx = np.arange(n, dtype=np.int64).reshape(labels.shape, order="F")
    a_list, b_list = [], []
    for axis in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis] = slice(0, -1)
        hi[axis] = slice(1, None)
        same = (labels[tuple(lo)] == labels[tuple(hi)]) & (labels[tuple(lo)] != 0)
        a_list.append(idx[tuple(lo)][same])
        b_list.append(idx[tuple(hi)][same])
    a = np.concatenate(a_list)
    b = np.concatenate(b_list)
    parent = np.arange(n, dtype=np.int64)
    while True:
        pa, pb = parent[a], parent[b]
        if np.array_equal(pa, pb):
            break
        low = np.minimum(pa, pb)
        np.minimum.at(parent, pa, low)
        np.minimum.at(parent, pb, low)
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped
    sizes = {}
    for label in np.unique(flat):
        if label == 0:
            continue
        _, size = np.unique(parent[flat == label], return_counts=True)
        sizes[int(label)] = sorted((int(v) for v in size), reverse=True)
    return sizes


def main():
    if sys.argv[1] == "components":
        out = []
        for path in sys.argv[2:]:
            data = np.asarray(nib.load(path).dataobj)
            values, voxels = np.unique(data, return_counts=True)
            out.append({"labels": {int(v): int(c) for v, c in zip(values, voxels)}, "components": components(data)})
        print(json.dumps(out))
    elif sys.argv[1] == "header":
        img = nib.load(sys.argv[2])
        data = np.asarray(img.dataobj)
        print(json.dumps({
            "dtype": str(data.dtype), "shape": list(data.shape),
            "sform": img.get_sform().tolist(), "qform": img.get_qform().tolist(),
            "sformCode": int(img.header["sform_code"]), "qformCode": int(img.header["qform_code"]),
            "sha": hashlib.sha256(np.ascontiguousarray(data.transpose(2, 1, 0)).tobytes()).hexdigest(),
        }))
    elif sys.argv[1] == "jacobian":
        nx, ny, nz = (int(v) for v in sys.argv[3:6])
        planes = np.fromfile(sys.argv[2], dtype="<f4").reshape(3, nz, ny, nx)
        # Re-index to [component][i, j, k] and differentiate along i, j, k.
        u = [np.transpose(planes[c], (2, 1, 0)).astype(np.float64) for c in range(3)]
        grad = [np.gradient(u[c]) for c in range(3)]
        jac = np.empty((3, 3) + u[0].shape)
        for c in range(3):
            for a in range(3):
                jac[c, a] = grad[c][a] + (1.0 if c == a else 0.0)
        det = np.linalg.det(np.moveaxis(jac, (0, 1), (-2, -1)))
        print(json.dumps({"min": float(det.min()), "max": float(det.max()), "nonPositive": int((det <= 0).sum())}))
    else:
        raise SystemExit(f"unknown mode {sys.argv[1]!r}")


if __name__ == "__main__":
    main()
