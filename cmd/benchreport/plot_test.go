package main

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// decodePNG reads the PNG at path.
func decodePNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return img
}

// countColor counts the pixels of img that are exactly c, inside r.
func countColor(img image.Image, r image.Rectangle, c color.RGBA) int {
	n := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if color.RGBAModel.Convert(img.At(x, y)) == c {
				n++
			}
		}
	}
	return n
}

func TestPlotDrawsALinePerSeriesWithAxesAndLabels(t *testing.T) {
	p := Plot{
		Title: "Fan-out time against recipients", XLabel: "recipients", YLabel: "seconds",
		LogX: true, LogY: true, XTicks: []float64{1000, 10000, 100000},
		Series: []Series{
			{Label: "inline", Color: palette[0], Points: []Point{{X: 1000, Y: 0.4}, {X: 10000, Y: 4}, {X: 100000, Y: 41}}},
			{Label: "sequential", Color: palette[2], Dashed: true, Points: []Point{{X: 1000, Y: 12}, {X: 10000, Y: 120, Hollow: true}}},
		},
	}
	path := filepath.Join(t.TempDir(), "plot.png")
	if err := p.WritePNG(path); err != nil {
		t.Fatal(err)
	}
	img := decodePNG(t, path)
	if got := img.Bounds(); got != image.Rect(0, 0, plotWidth, plotHeight) {
		t.Fatalf("got bounds %v, want %dx%d", got, plotWidth, plotHeight)
	}
	f := p.frame()
	inside := image.Rect(f.left+1, f.top, f.right, f.bottom)
	for _, s := range p.Series {
		// A line across a third of the frame or more is hundreds of pixels.
		if n := countColor(img, inside, s.Color); n < 300 {
			t.Errorf("series %s: %d pixels of its colour in the frame, want a line", s.Label, n)
		}
	}
	if n := countColor(img, inside, palette[1]); n != 0 {
		t.Errorf("%d pixels of a colour no series has", n)
	}
	// The axes: a black line along the bottom and the left of the frame.
	if n := countColor(img, image.Rect(f.left, f.bottom, f.right+1, f.bottom+1), black); n != f.right-f.left+1 {
		t.Errorf("x axis: %d black pixels, want %d", n, f.right-f.left+1)
	}
	if n := countColor(img, image.Rect(f.left, f.top, f.left+1, f.bottom+1), black); n != f.bottom-f.top+1 {
		t.Errorf("y axis: %d black pixels, want %d", n, f.bottom-f.top+1)
	}
	// Text: the title above the frame, tick labels left of it and under it.
	for name, r := range map[string]image.Rectangle{
		"title":          image.Rect(0, 0, plotWidth, 24),
		"y tick labels":  image.Rect(0, f.top, f.left-2, f.bottom),
		"x tick labels":  image.Rect(f.left, f.bottom+2, f.right, f.bottom+24),
		"the x label":    image.Rect(0, plotHeight-26, plotWidth, plotHeight),
		"legend entries": image.Rect(0, legendTop-12, plotWidth, legendTop+4),
	} {
		if countColor(img, r, textColor)+countColor(img, r, black) < 20 {
			t.Errorf("no text in %s (%v)", name, r)
		}
	}
}

func TestPlotDrawsTheSamePNGEveryTime(t *testing.T) {
	run := parseRun(t, sampleInput(t))
	dir := t.TempDir()
	for i, p := range []Plot{fanOutPlot(run), fanOutPlot(run)} {
		if err := p.WritePNG(filepath.Join(dir, []string{"a.png", "b.png"}[i])); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := os.ReadFile(filepath.Join(dir, "a.png"))
	b, _ := os.ReadFile(filepath.Join(dir, "b.png"))
	if string(a) != string(b) {
		t.Error("two drawings of one plot differ")
	}
}

func TestPlotWithNothingMeasuredStillDraws(t *testing.T) {
	p := fanOutPlot(&Run{Results: map[string]*Result{}})
	img := p.Draw()
	f := p.frame()
	for _, s := range p.Series {
		if n := countColor(img, image.Rect(f.left+1, f.top, f.right, f.bottom), s.Color); n != 0 {
			t.Errorf("series %s: %d pixels drawn with no point", s.Label, n)
		}
	}
	if countColor(img, image.Rect(f.left+1, f.top, f.right, f.bottom), textColor) == 0 {
		t.Error("no \"not measured\" in the frame")
	}
}

func TestTicks(t *testing.T) {
	for _, tt := range []struct {
		name string
		a    axis
		want []float64
	}{
		{"decades", axis{log: true, lo: -0.1, hi: 3.1}, []float64{1, 10, 100, 1000}},
		{"one decade", axis{log: true, lo: -1.1, hi: 0.2}, []float64{0.1, 0.2, 0.5, 1}},
		{"less than a decade", axis{log: true, lo: 0.09, hi: 0.12}, []float64{1.24, 1.26, 1.28, 1.3}},
		{"linear", axis{lo: 0, hi: 10}, []float64{0, 2, 4, 6, 8, 10}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := ticks(tt.a)
			for i := range got {
				got[i] = float64(int(got[i]*1e6+0.5)) / 1e6
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
