"""Score a folder of dermoscopy images into an Excel worklist: python batch.py images/ --out report.xlsx"""

from screening.batch import main

if __name__ == "__main__":
    raise SystemExit(main())
