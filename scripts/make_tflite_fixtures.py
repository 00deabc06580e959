"""Make the LCE .tflite test fixtures in test/data/tflite/ (NOT run by CI).

CI cannot install TensorFlow, so the fixtures and their oracle outputs are
committed. This script regenerates them in a separate converter environment
(TensorFlow 2.16 wants numpy<2; never install it into bnnc's own venv):

    python3.11 -m venv /tmp/lce-conv
    /tmp/lce-conv/bin/pip install "tensorflow==2.16.*" "tf-keras==2.16.*" larq==0.14.0 \
        "larq-compute-engine==0.16.*" "numpy<2"
    /tmp/lce-conv/bin/pip install larq-zoo==2.4.0          # the zoo architectures
    TF_USE_LEGACY_KERAS=1 /tmp/lce-conv/bin/python scripts/make_tflite_fixtures.py [NAME ...]
    TF_USE_LEGACY_KERAS=1 /tmp/lce-conv/bin/python scripts/make_tflite_fixtures.py --bench DIR [MODEL ...]

(verified with tensorflow 2.16.2, tf-keras 2.16.0, larq 0.14.0,
larq-compute-engine 0.16.0, numpy 1.26.4). For every model NAME it writes
NAME.tflite (LCE's converter, random weights, non-trivial batch-norm
statistics), NAME.input.npy (a random NHWC input) and NAME.output.npy (what
LCE's own interpreter, larq_compute_engine.testing.Interpreter, computes for
that input with one thread and its reference bconv kernel): the oracle of
test/test_tflite_frontend.py.

The zoo fixtures (quicknet_small, quicknet, quicknet_large, birealnet,
binary_densenet28, binary_resnet_e18) are Larq zoo 2.4.0's architectures at
64x64 (the smallest input their five stride-2 stages leave a 2x2 map for), 10 classes and without the final softmax
(random weights saturate it; the logits are the sharper oracle), with random
weights: the zoo's pretrained weights cannot be downloaded here.

``--bench DIR`` writes the zoo models at 224x224 with 1000 classes and the
softmax, the zoo's own random initialisation, for bench/lce_table.py (too
large to commit: 4-10 MB each).
"""

from __future__ import annotations

import os
import sys
import zlib
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import larq as lq  # noqa: E402
import larq_compute_engine as lce  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

keras = tf.keras
OUT = Path(__file__).resolve().parent.parent / "test" / "data" / "tflite"
RNG = np.random.default_rng(20261201)

BINARY = dict(input_quantizer="ste_sign", kernel_quantizer="ste_sign", kernel_constraint="weight_clip", use_bias=False)


def bn() -> keras.layers.Layer:
    return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-3)


def randomize(model: keras.Model) -> None:
    """Random weights, and batch norms whose statistics make every sign decision non-trivial
    (some negative gammas, means and variances of the scale the binary accumulators have)."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.moving_mean.shape[0]
            gamma = RNG.uniform(0.5, 1.5, c) * RNG.choice([1.0, 1.0, 1.0, -1.0], c)
            beta = RNG.normal(0, 0.5, c)
            stats = [RNG.normal(0, 3.0, c), RNG.uniform(4.0, 30.0, c)]
            # the zoo's batch norms may have no gamma (scale=False) or beta (center=False)
            weights = [gamma] * (layer.gamma is not None) + [beta] * (layer.beta is not None) + stats
            layer.set_weights([w.astype(np.float32) for w in weights])
        elif layer.weights:
            layer.set_weights([RNG.normal(0, 0.5, w.shape).astype(np.float32) for w in layer.get_weights()])


def quicknet_block() -> keras.Model:
    """QuickNet style: float stem, binary 3x3 convs with one-padding and residual adds,
    a max-pool + pointwise float transition, global pooling and a classifier."""
    x = inp = keras.Input((16, 16, 3), batch_size=1)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(x)
    x = bn()(x)
    x = keras.layers.Activation("relu")(x)
    for _ in range(2):
        y = lq.layers.QuantConv2D(32 if x.shape[-1] == 32 else 16, 3, padding="same", pad_values=1.0, **BINARY)(x)
        y = keras.layers.Activation("relu")(y)
        y = bn()(y)
        x = keras.layers.Add()([x, y])
    x = keras.layers.MaxPool2D(3, strides=2, padding="same")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = bn()(x)
    x = keras.layers.Conv2D(32, 1, use_bias=False)(x)
    x = bn()(x)
    y = lq.layers.QuantConv2D(32, 3, padding="same", pad_values=1.0, **BINARY)(x)
    y = bn()(y)
    x = keras.layers.Add()([x, y])
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(10)(x)
    x = keras.layers.Activation("softmax")(x)
    return keras.Model(inp, x)


def birealnet_block() -> keras.Model:
    """Bi-Real Net style: 7x7 float stem, max pool, binary convs with zero padding
    (stride 2 included: asymmetric SAME padding), average-pool + 1x1 shortcuts."""
    x = inp = keras.Input((32, 32, 3), batch_size=1)
    x = keras.layers.Conv2D(16, 7, strides=2, padding="same", use_bias=False)(x)
    x = bn()(x)
    x = keras.layers.MaxPool2D(3, strides=2, padding="same")(x)
    y = lq.layers.QuantConv2D(16, 3, padding="same", input_quantizer="approx_sign",
                              kernel_quantizer="magnitude_aware_sign", kernel_constraint="weight_clip",
                              use_bias=False)(x)
    y = bn()(y)
    x = keras.layers.Add()([x, y])
    s = keras.layers.AvgPool2D(2, strides=2, padding="valid")(x)
    s = keras.layers.Conv2D(32, 1, use_bias=False)(s)
    s = bn()(s)
    y = lq.layers.QuantConv2D(32, 3, strides=2, padding="same", input_quantizer="approx_sign",
                              kernel_quantizer="magnitude_aware_sign", kernel_constraint="weight_clip",
                              use_bias=False)(x)
    y = bn()(y)
    x = keras.layers.Add()([s, y])
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(10)(x)
    return keras.Model(inp, x)


def binary_chain() -> keras.Model:
    """Binary conv -> BN -> (max pool) -> binary conv without shortcuts: LCE writes bitpacked
    outputs through thresholds, pools packed bits (LceBMaxPool2d), concatenates (DenseNet style)."""
    x = inp = keras.Input((12, 12, 40), batch_size=1)
    y = lq.layers.QuantConv2D(48, 3, padding="same", pad_values=1.0, **BINARY)(x)
    y = bn()(y)
    y = lq.layers.QuantConv2D(64, 3, padding="same", pad_values=1.0, **BINARY)(y)
    y = bn()(y)
    y = keras.layers.MaxPool2D(2, strides=2)(y)
    y = lq.layers.QuantConv2D(24, 3, padding="valid", **BINARY)(y)
    y = bn()(y)
    z = keras.layers.Concatenate()([keras.layers.MaxPool2D(3, strides=3)(x), y])
    z = lq.layers.QuantConv2D(16, 1, **BINARY)(z)
    return keras.Model(inp, z)


def dense_bnn() -> keras.Model:
    """A binary MLP: flatten, binary dense layers with batch norm, float classifier."""
    x = inp = keras.Input((8, 8, 2), batch_size=1)
    x = keras.layers.Flatten()(x)
    x = lq.layers.QuantDense(64, input_quantizer=None, kernel_quantizer="ste_sign", kernel_constraint="weight_clip",
                             use_bias=False)(x)
    x = bn()(x)
    x = lq.layers.QuantDense(64, **BINARY)(x)
    x = bn()(x)
    x = lq.layers.QuantDense(10, **BINARY)(x)
    x = bn()(x)
    x = keras.layers.Activation("softmax")(x)
    return keras.Model(inp, x)


MODELS = {
    "quicknet_block": quicknet_block,
    "birealnet_block": birealnet_block,
    "binary_chain": binary_chain,
    "dense_bnn": dense_bnn,
}


# fixture name -> larq_zoo model function name (module sota or literature)
ZOO = {
    "quicknet_small": "QuickNetSmall",
    "quicknet": "QuickNet",
    "quicknet_large": "QuickNetLarge",
    "birealnet": "BiRealNet",
    "binary_densenet28": "BinaryDenseNet28",
    "binary_resnet_e18": "BinaryResNetE18",
}


def zoo_fixture(zoo_name: str) -> keras.Model:
    """The zoo architecture at 64x64, 10 classes, logits out (the final softmax layer dropped)."""
    import larq_zoo as lqz

    make = getattr(lqz.sota, zoo_name, None) or getattr(lqz.literature, zoo_name)
    model = make(input_shape=(64, 64, 3), weights=None, num_classes=10)
    last = model.layers[-1]
    assert isinstance(last, keras.layers.Activation) and last.get_config()["activation"] == "softmax"
    return keras.Model(model.inputs, model.layers[-2].output)


def bench(out: Path, names: list[str]) -> None:
    """The 224x224, 1000-class zoo models of bench/lce_table.py (zoo initialisation, batch 1)."""
    import larq_zoo as lqz

    out.mkdir(parents=True, exist_ok=True)
    for name in names or list(ZOO.values()):
        make = getattr(lqz.sota, name, None) or getattr(lqz.literature, name)
        flatbuffer = lce.convert_keras_model(make(input_shape=(224, 224, 3), weights=None))
        (out / f"{name}.tflite").write_bytes(flatbuffer)
        print(f"{name}: {len(flatbuffer)} bytes")


def main(names: list[str]) -> None:
    if names[:1] == ["--bench"]:
        bench(Path(names[1]), names[2:])
        return
    OUT.mkdir(parents=True, exist_ok=True)
    global RNG
    for name in names or list(MODELS) + list(ZOO):
        if name in ZOO:  # own seed: a zoo fixture regenerates alone to the same file
            RNG = np.random.default_rng(zlib.crc32(name.encode()))
        model = zoo_fixture(ZOO[name]) if name in ZOO else MODELS[name]()
        randomize(model)
        flatbuffer = lce.convert_keras_model(model)
        (OUT / f"{name}.tflite").write_bytes(flatbuffer)
        x = RNG.normal(0, 1, (1, *model.input_shape[1:])).astype(np.float32)
        # LCE's reference bconv kernel: its optimised one computes a different
        # function from the Keras model on the BiRealNet fixture (zero padding;
        # the reference kernel and Keras agree), so the reference is the oracle
        y = lce.testing.Interpreter(flatbuffer, num_threads=1, use_reference_bconv=True).predict(x)
        fast = lce.testing.Interpreter(flatbuffer, num_threads=1).predict(x)
        if not np.allclose(fast, y, rtol=1e-4, atol=1e-4 * float(np.abs(y).max())):
            print(f"{name}: LCE's optimised kernels differ from its reference kernels by {np.abs(fast - y).max()}")
        np.save(OUT / f"{name}.input.npy", x)
        np.save(OUT / f"{name}.output.npy", np.asarray(y, dtype=np.float32))
        print(f"{name}: {len(flatbuffer)} bytes, output {np.shape(y)}")


if __name__ == "__main__":
    main(sys.argv[1:])
