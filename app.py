"""The SkinScreen page for one image at a time: python app.py (then open http://127.0.0.1:7860)."""

from screening.app import main

if __name__ == "__main__":
    raise SystemExit(main())
