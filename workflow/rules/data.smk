rule extract:
    output:
        train=f"{RESULTS}/data/train.h5",
        val=f"{RESULTS}/data/val.h5",
        stats=f"{RESULTS}/data/stats.json",
        summary=f"{RESULTS}/data/summary.json",
    log:
        f"{RESULTS}/logs/extract.log",
    conda:
        "../../environment.yml"
    threads: 2
    params:
        data=config["data"],
    script:
        "../scripts/extract.py"
