"""The report's numbers: what each experiment is compared with.

Liu, Shi, Chen, "U-Net School for Medical Image Segmentation" (SJTU),
section V. Accuracy = pixel accuracy on ISBI 2012 slices 25-29 of the
binarised prediction.
"""

#: The report's experiments, one per network (``results/<profile>/<experiment>/``).
EXPERIMENTS = ("unet", "unetpp", "unet3p")

#: The report's numbers (u-net-school-report.txt, section V).
REPORT = {
    "unet": {
        "network": "U-Net",
        "accuracy": 0.9189,
        "best_threshold": 87,
        "framework": "TF/Keras, GTX 1060 6 GB",
        "schedule": "Adam 1e-4, 10 epochs x 2000 steps, ~5 h",
        # Table I: before binarisation was fixed (raw equality of uint8 maps).
        "table1": {
            "resize_prediction": 0.6754,
            "resize_label": 0.7545,
            "retrain_full": 0.6996,
        },
    },
    "unetpp": {
        "network": "UNet++",
        "accuracy": 0.917,
        "framework": "PyTorch",
        "schedule": "SGD 1e-3 momentum 0.9 wd 1e-4, batch 1, 100 epochs",
        # Table II
        "ds_heads": {"out1": 0.878, "out2": 0.886, "out3": 0.891, "out4": 0.894},
        "no_ds": 0.917,
    },
    "unet3p": {
        "network": "UNet 3+",
        "accuracy": 0.923,
        "best_epoch": 18,
        "epochs": 40,
        "framework": "PyTorch",
        "schedule": "Adam 1e-3, batch 1, best at epoch 18 of 1-40",
    },
}

#: The report's accuracy of each row of SUMMARY.md, by network name; the
#: deep-supervision UNet++ is scored by its main head (Table II, out4).
REPORT_ACCURACY = {
    **{REPORT[exp]["network"]: REPORT[exp]["accuracy"] for exp in EXPERIMENTS},
    "UNet++ (deep supervision)": REPORT["unetpp"]["ds_heads"]["out4"],
}
