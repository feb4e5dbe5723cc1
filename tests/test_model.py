import keras
import numpy as np
import pytest

from screening.model import backbone_of, build_model, set_trainable


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return build_model(weights=None, alpha=0.25, seed=0)


def _trainable(model: keras.Model) -> set[str]:
    return {layer.name for layer in backbone_of(model).layers if layer.trainable and layer.weights}


def test_only_the_last_blocks_train_and_batch_norm_stays_frozen(model):
    set_trainable(model, 2)
    assert _trainable(model) == {"conv_dw_12", "conv_pw_12", "conv_dw_13", "conv_pw_13"}
    assert model.get_layer("logits").trainable
    set_trainable(model, 0)
    assert _trainable(model) == set()


def test_batch_norm_trains_with_its_block_when_asked(model):
    set_trainable(model, 1, batch_norm=True)
    assert _trainable(model) == {"conv_dw_13", "conv_dw_13_bn", "conv_pw_13", "conv_pw_13_bn"}


@pytest.mark.parametrize("batch_norm", [False, True])
def test_moving_statistics_move_only_in_trained_batch_norm(batch_norm):
    model = build_model(weights=None, alpha=0.25, seed=0)
    set_trainable(model, 1, batch_norm=batch_norm)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    stats = lambda name: keras.ops.convert_to_numpy(backbone_of(model).get_layer(name).moving_mean).copy()
    before = {name: stats(name) for name in ("conv_pw_13_bn", "conv_pw_12_bn")}
    x = np.random.default_rng(0).integers(0, 256, (8, 224, 224, 3)).astype("float32")
    model.fit(x, np.eye(7, dtype="float32")[np.arange(8) % 7], batch_size=4, epochs=1, verbose=0)
    assert np.allclose(stats("conv_pw_13_bn"), before["conv_pw_13_bn"]) != batch_norm
    assert np.allclose(stats("conv_pw_12_bn"), before["conv_pw_12_bn"])  # outside the trained blocks
