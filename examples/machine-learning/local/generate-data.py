#!/usr/bin/env python3
"""Write a synthetic daily weather CSV shaped like Kaggle's "Rain in Australia" set.

The real data set cannot be downloaded here, so this makes one with the same
columns, value ranges, missing values and, above all, learnable structure:
a persistent "wetness" state per location drives rain, humidity, cloud and
pressure, so today's afternoon readings say something about rain tomorrow.

Deterministic: the same --seed, --locations and --days give the same bytes.

    python3 generate-data.py --output weatherAUS.csv [--seed 42] [--locations 10] [--days 1095]
"""

import argparse
import os
import sys

import numpy as np
import pandas as pd

# name, mean temperature (C), seasonal amplitude (C), rain propensity (higher = wetter)
LOCATIONS = [
    ("Sydney", 18.5, 4.5, 0.15),
    ("Melbourne", 15.5, 5.0, 0.05),
    ("Brisbane", 21.0, 4.0, 0.10),
    ("Perth", 18.5, 5.5, -0.05),
    ("Adelaide", 17.0, 5.5, -0.15),
    ("Hobart", 12.5, 4.5, 0.10),
    ("Darwin", 28.0, 2.0, 0.25),
    ("Canberra", 13.5, 7.0, -0.10),
    ("Cairns", 25.5, 3.0, 0.30),
    ("AliceSprings", 21.5, 8.5, -0.60),
    ("Albury", 16.0, 7.0, -0.05),
    ("Townsville", 25.0, 3.5, 0.05),
    ("CoffsHarbour", 19.5, 4.0, 0.25),
    ("Mildura", 17.5, 7.0, -0.45),
    ("PortLincoln", 16.5, 4.0, -0.05),
    ("Launceston", 13.0, 5.0, 0.00),
]
COMPASS = ["N", "NNE", "NE", "ENE", "E", "ESE", "SE", "SSE", "S", "SSW", "SW", "WSW", "W", "WNW", "NW", "NNW"]
COLUMNS = [
    "Date", "Location", "MinTemp", "MaxTemp", "Rainfall", "Evaporation", "Sunshine",
    "WindGustDir", "WindGustSpeed", "WindDir9am", "WindDir3pm", "WindSpeed9am", "WindSpeed3pm",
    "Humidity9am", "Humidity3pm", "Pressure9am", "Pressure3pm", "Cloud9am", "Cloud3pm",
    "Temp9am", "Temp3pm", "RainToday", "RainTomorrow",
]
# Share of missing readings per column, roughly as in the real data set.
MISSING = {
    "MinTemp": 0.01, "MaxTemp": 0.01, "Rainfall": 0.02, "Evaporation": 0.40, "Sunshine": 0.45,
    "WindGustDir": 0.07, "WindGustSpeed": 0.07, "WindDir9am": 0.07, "WindDir3pm": 0.03,
    "WindSpeed9am": 0.01, "WindSpeed3pm": 0.02, "Humidity9am": 0.02, "Humidity3pm": 0.03,
    "Pressure9am": 0.10, "Pressure3pm": 0.10, "Cloud9am": 0.38, "Cloud3pm": 0.40,
    "Temp9am": 0.01, "Temp3pm": 0.02,
}


def location_frame(rng, name, mean_temp, amplitude, propensity, dates):
    days = len(dates)
    # Southern hemisphere: warmest around mid January.
    season = np.cos(2 * np.pi * (dates.day_of_year.to_numpy() - 15) / 365.25)
    # Wetness: an AR(1) process, so wet spells and dry spells persist.
    wetness = np.empty(days + 1)
    wetness[0] = rng.normal()
    shocks = rng.normal(scale=0.6, size=days + 1)
    for t in range(1, days + 1):
        wetness[t] = 0.75 * wetness[t - 1] + shocks[t]
    wet_today, wet_tomorrow = wetness[:-1], wetness[1:]
    rain_score = wet_today + propensity + rng.normal(scale=0.35, size=days)
    rains = rain_score > 0.9
    rainfall = np.where(rains, rng.gamma(shape=1.2, scale=4.0 + 3.0 * np.clip(wet_today, 0, None)), 0.0)
    # Days with under 1 mm count as dry, as in the real set.
    rain_today = rainfall >= 1.0
    # Tomorrow's rain, from tomorrow's wetness, decided the same way as today's.
    tomorrow_score = wet_tomorrow + propensity + rng.normal(scale=0.35, size=days)
    tomorrow_rainfall = np.where(tomorrow_score > 0.9, rng.gamma(shape=1.2, scale=4.0), 0.0)
    rain_tomorrow = tomorrow_rainfall >= 1.0

    max_temp = mean_temp + 4 + amplitude * season - 1.8 * wet_today + rng.normal(scale=2.5, size=days)
    min_temp = max_temp - 9 - 2 * (1 - np.tanh(wet_today)) + rng.normal(scale=1.8, size=days)
    temp9am = min_temp + 0.45 * (max_temp - min_temp) + rng.normal(scale=1.0, size=days)
    temp3pm = max_temp - 1.0 - 0.5 * np.clip(wet_today, 0, None) + rng.normal(scale=0.8, size=days)
    # The afternoon already shows the front coming in: 3pm readings lean on tomorrow's wetness.
    humidity9am = np.clip(68 + 11 * wet_today + 6 * propensity + rng.normal(scale=9, size=days), 5, 100)
    humidity3pm = np.clip(50 + 9 * wet_today + 8 * wet_tomorrow + rng.normal(scale=9, size=days), 2, 100)
    pressure9am = 1017.5 - 3.0 * wet_today - 2.0 * season + rng.normal(scale=4.5, size=days)
    pressure3pm = pressure9am - 2.5 - 2.5 * (wet_tomorrow - wet_today) + rng.normal(scale=1.2, size=days)
    cloud9am = np.clip(np.rint(4.5 + 1.8 * wet_today + rng.normal(scale=1.8, size=days)), 0, 8)
    cloud3pm = np.clip(np.rint(4.5 + 1.2 * wet_today + 1.2 * wet_tomorrow + rng.normal(scale=1.8, size=days)), 0, 8)
    sunshine = np.clip(8.5 + 2.5 * season - 1.6 * wet_today + rng.normal(scale=2.0, size=days), 0, 14)
    evaporation = np.clip(5.0 + 2.5 * season - 0.8 * wet_today + rng.gamma(1.5, 1.0, size=days) - 1.5, 0, None)
    gust_speed = np.clip(np.rint(38 + 6 * np.abs(wet_tomorrow) + rng.normal(scale=11, size=days)), 7, 130)
    speed9am = np.clip(np.rint(13 + rng.gamma(2.0, 3.0, size=days) - 3), 0, 90)
    speed3pm = np.clip(np.rint(18 + rng.gamma(2.0, 3.0, size=days) - 3 + 2 * wet_tomorrow), 0, 90)
    # Wet days blow more often from the south-west quarter.
    def wind(shift):
        centre = np.where(wet_today + shift > 0.5, 10, 3)
        return np.array(COMPASS)[(centre + rng.integers(-3, 4, size=days)) % 16]

    return pd.DataFrame({
        "Date": dates.strftime("%Y-%m-%d"),
        "Location": name,
        "MinTemp": min_temp.round(1),
        "MaxTemp": max_temp.round(1),
        "Rainfall": rainfall.round(1),
        "Evaporation": evaporation.round(1),
        "Sunshine": sunshine.round(1),
        "WindGustDir": wind(0.3),
        "WindGustSpeed": gust_speed,
        "WindDir9am": wind(0.0),
        "WindDir3pm": wind(0.5),
        "WindSpeed9am": speed9am,
        "WindSpeed3pm": speed3pm,
        "Humidity9am": np.rint(humidity9am),
        "Humidity3pm": np.rint(humidity3pm),
        "Pressure9am": pressure9am.round(1),
        "Pressure3pm": pressure3pm.round(1),
        "Cloud9am": cloud9am,
        "Cloud3pm": cloud3pm,
        "Temp9am": temp9am.round(1),
        "Temp3pm": temp3pm.round(1),
        "RainToday": np.where(rain_today, "Yes", "No"),
        "RainTomorrow": np.where(rain_tomorrow, "Yes", "No"),
    })


def generate(seed, locations, days, start):
    rng = np.random.default_rng(seed)
    dates = pd.date_range(start=start, periods=days, freq="D")
    frames = [location_frame(rng, *LOCATIONS[i], dates) for i in range(locations)]
    data = pd.concat(frames, ignore_index=True)[COLUMNS]
    for column, share in MISSING.items():
        mask = rng.random(len(data)) < share
        data[column] = data[column].astype(object).where(~mask, None)
    # RainTomorrow is missing where the next day's reading was lost.
    lost = rng.random(len(data)) < 0.02
    data["RainTomorrow"] = data["RainTomorrow"].where(~lost, None)
    return data


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, help="CSV file to write")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--locations", type=int, default=10, help=f"1 to {len(LOCATIONS)}")
    parser.add_argument("--days", type=int, default=1095)
    parser.add_argument("--start", default="2008-12-01")
    args = parser.parse_args(argv)
    if not 1 <= args.locations <= len(LOCATIONS):
        parser.error(f"--locations must be between 1 and {len(LOCATIONS)}, got {args.locations}")
    if args.days < 30:
        parser.error(f"--days must be at least 30, got {args.days}")

    data = generate(args.seed, args.locations, args.days, args.start)
    directory = os.path.dirname(args.output)
    if directory:
        os.makedirs(directory, exist_ok=True)
    data.to_csv(args.output, index=False, na_rep="NA", lineterminator="\n")
    share = (data["RainTomorrow"] == "Yes").mean()
    print(f"wrote {len(data)} rows ({args.locations} locations x {args.days} days) to {args.output}; "
          f"RainTomorrow=Yes on {share:.1%} of days")
    return 0


if __name__ == "__main__":
    sys.exit(main())
