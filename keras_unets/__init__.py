"""keras-unets: U-Net, UNet++ and UNet 3+ for Keras 3.

Reproduces the "U-Net School" report (Liu, Shi, Chen) on the ISBI 2012 EM
membrane data. Sub-modules are imported lazily so that ``import keras_unets``
stays cheap and the data/metrics layers work without importing Keras.
"""

__version__ = "0.1.0"
