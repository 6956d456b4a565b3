#!/usr/bin/env python3
"""Checks an ONNX file with Debian's python3-onnx and prints what the tests assert on, as JSON:

    python3 onnx_check.py MODEL.onnx

Runs onnx.checker.check_model(full_check=True) (which also infers every shape) and prints
{"ir_version", "opsets": {domain: version}, "inputs": {name: [dims]}, "outputs": {...}, "metadata": {key: value},
 "initializers", "nodes", "ops": [sorted op types]}; a symbolic dimension is printed as its name.
"""
import json
import sys

try:
    import onnx
except ImportError as error:
    sys.stderr.write(f"{sys.executable} cannot import onnx ({error}); install Debian's python3-onnx\n")
    sys.exit(3)


def dims(value):
    return [d.dim_param if d.dim_param else d.dim_value for d in value.type.tensor_type.shape.dim]


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__)
    model = onnx.load(argv[1])
    onnx.checker.check_model(model, full_check=True)
    print(json.dumps({
        "ir_version": model.ir_version,
        "opsets": {o.domain: o.version for o in model.opset_import},
        "inputs": {i.name: dims(i) for i in model.graph.input},
        "outputs": {o.name: dims(o) for o in model.graph.output},
        "metadata": {p.key: p.value for p in model.metadata_props},
        "initializers": len(model.graph.initializer),
        "nodes": len(model.graph.node),
        "ops": sorted({n.op_type for n in model.graph.node}),
    }))


if __name__ == "__main__":
    main(sys.argv)
