"""The calls of upstream's examples/prov4ml_pol.py: a tf.keras model with the proof-of-learning callback."""
import sys

import tensorflow as tf

import yprov4ml
from synthetic import tfds

yprov4ml.start_run(experiment_name="keras_pol", prov_user_namespace="www.example.org",
                   provenance_save_dir=sys.argv[1], collect_all_processes=False, csv_separator=";",
                   save_after_n_logs=100, disable_codecarbon=True)
yprov4ml.log_param("seed", 42)
yprov4ml.log_execution_command("python", "prov4ml_pol.py")
yprov4ml.log_source_code("examples/prov4ml_pol.py")  # not there: the running script is recorded instead
(ds_train, ds_test), ds_info = tfds.load("cifar10", split=["train", "test"], shuffle_files=True,
                                         as_supervised=True, with_info=True)
yprov4ml.log_dataset("ds_train", ds_train)
yprov4ml.log_dataset("ds_test", ds_test)
ds_train = ds_train.map(lambda image, label: (tf.cast(image, tf.float32) / 255.0, label)).batch(32)
ds_test = ds_test.map(lambda image, label: (tf.cast(image, tf.float32) / 255.0, label)).batch(32)
model = tf.keras.models.Sequential([tf.keras.Input((32, 32, 3)), tf.keras.layers.Flatten(),
                                    tf.keras.layers.Dense(16, activation="relu"), tf.keras.layers.Dense(10)])
model.compile(optimizer=tf.keras.optimizers.Adam(0.001),
              loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=[tf.keras.metrics.SparseCategoricalAccuracy()])
yprov4ml.log_model("model_Sequential", model)
yprov4ml.log_param("num_epochs", 2)
model.fit(ds_train, epochs=2, validation_data=ds_test, verbose=0,
          callbacks=[yprov4ml.POLLoggingCallback("model_label", model, log_every_n_steps=5)])
yprov4ml.end_run(create_graph=True, create_svg=True, crate_ro_crate=False)
