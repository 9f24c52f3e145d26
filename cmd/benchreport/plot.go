package main

import (
	"bufio"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Plot is a line chart: a title, two axes (each linear or log 10) with tick
// labels, and a legend.
type Plot struct {
	Title, XLabel, YLabel string
	LogX, LogY            bool
	// XTicks are where the x axis is labelled; empty: the decades (log) or
	// five round values (linear).
	XTicks           []float64
	XFormat, YFormat func(float64) string
	Series           []Series
}

// Series is one line of a plot.
type Series struct {
	Label  string
	Color  color.RGBA
	Dashed bool
	Points []Point
}

// Point is a point of a series; a hollow one is drawn as a ring (an
// extrapolated figure, say).
type Point struct {
	X, Y   float64
	Hollow bool
}

// The plots' size and colours.
const (
	plotWidth  = 720
	plotHeight = 440
)

var (
	palette = []color.RGBA{
		{0x1f, 0x77, 0xb4, 0xff}, // blue
		{0xff, 0x7f, 0x0e, 0xff}, // orange
		{0x2c, 0xa0, 0x2c, 0xff}, // green
		{0x7f, 0x7f, 0x7f, 0xff}, // grey
	}
	white     = color.RGBA{0xff, 0xff, 0xff, 0xff}
	black     = color.RGBA{0x00, 0x00, 0x00, 0xff}
	gridColor = color.RGBA{0xe4, 0xe4, 0xe4, 0xff}
	textColor = color.RGBA{0x22, 0x22, 0x22, 0xff}
)

// frame is the plot area, in pixels.
type frame struct{ left, top, right, bottom int }

// frame returns the plot area: below the title, the legend and the y
// axis's label, above the x axis's labels.
func (p Plot) frame() frame {
	rows, _ := legendRows(p.Series)
	return frame{left: 72, top: legendTop + rows*legendRow + 22, right: plotWidth - 24, bottom: plotHeight - 56}
}

// axis maps values to pixels along one direction.
type axis struct {
	log    bool
	lo, hi float64 // in axis units (log10 of the value on a log axis)
	p0, p1 int     // pixels of lo and hi
}

func (a axis) unit(v float64) float64 {
	if a.log {
		return math.Log10(v)
	}
	return v
}

func (a axis) pixel(v float64) float64 {
	u := a.unit(v)
	return float64(a.p0) + (u-a.lo)/(a.hi-a.lo)*float64(a.p1-a.p0)
}

// Draw renders the plot.
func (p Plot) Draw() *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, plotWidth, plotHeight))
	draw.Draw(img, img.Bounds(), image.NewUniform(white), image.Point{}, draw.Src)
	f := p.frame()

	var xs, ys []float64
	for _, s := range p.Series {
		for _, pt := range s.Points {
			if (p.LogX && pt.X <= 0) || (p.LogY && pt.Y <= 0) {
				continue
			}
			xs = append(xs, pt.X)
			ys = append(ys, pt.Y)
		}
	}
	noData := len(xs) == 0
	xs = append(xs, p.XTicks...)
	xa := span(xs, p.LogX, 0.12, f.left, f.right)
	ya := span(ys, p.LogY, 0.08, f.bottom, f.top)

	xFormat, yFormat := p.XFormat, p.YFormat
	if xFormat == nil {
		xFormat = axisNum
	}
	if yFormat == nil {
		yFormat = axisNum
	}
	// Grid and tick labels.
	xticks := p.XTicks
	if len(xticks) == 0 {
		xticks = ticks(xa)
	}
	for _, t := range xticks {
		x := int(math.Round(xa.pixel(t)))
		if x < f.left || x > f.right {
			continue
		}
		vline(img, x, f.top, f.bottom, gridColor)
		label := xFormat(t)
		text(img, x-textWidth(label)/2, f.bottom+16, label, textColor)
	}
	for _, t := range ticks(ya) {
		y := int(math.Round(ya.pixel(t)))
		if y < f.top || y > f.bottom {
			continue
		}
		hline(img, f.left, f.right, y, gridColor)
		label := yFormat(t)
		text(img, f.left-6-textWidth(label), y+4, label, textColor)
	}
	// Axes.
	hline(img, f.left, f.right, f.bottom, black)
	vline(img, f.left, f.top, f.bottom, black)

	// Lines, then markers over them.
	for _, s := range p.Series {
		var prev *Point
		dist := 0.0
		for i := range s.Points {
			pt := &s.Points[i]
			if (p.LogX && pt.X <= 0) || (p.LogY && pt.Y <= 0) {
				prev = nil
				continue
			}
			if prev != nil {
				dist = line(img, xa.pixel(prev.X), ya.pixel(prev.Y), xa.pixel(pt.X), ya.pixel(pt.Y), s.Color, s.Dashed, dist)
			}
			prev = pt
		}
		for _, pt := range s.Points {
			if (p.LogX && pt.X <= 0) || (p.LogY && pt.Y <= 0) {
				continue
			}
			marker(img, xa.pixel(pt.X), ya.pixel(pt.Y), s.Color, pt.Hollow)
		}
	}
	if noData {
		msg := "not measured"
		text(img, (f.left+f.right-textWidth(msg))/2, (f.top+f.bottom)/2, msg, textColor)
	}

	// Title, axis labels, legend.
	text(img, (plotWidth-textWidth(p.Title))/2, 20, p.Title, black)
	text(img, 8, f.top-10, p.YLabel, textColor)
	text(img, (f.left+f.right-textWidth(p.XLabel))/2, plotHeight-12, p.XLabel, textColor)
	legend(img, p.Series)
	return img
}

// WritePNG draws the plot into the file path.
func (p Plot) WritePNG(path string) error {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(out)
	if err := png.Encode(w, p.Draw()); err != nil {
		out.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// span returns the axis that holds values, with a margin (a fraction of
// the range) on each side.
func span(values []float64, log bool, margin float64, p0, p1 int) axis {
	a := axis{log: log, p0: p0, p1: p1}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range values {
		if log && v <= 0 {
			continue
		}
		u := a.unit(v)
		lo, hi = math.Min(lo, u), math.Max(hi, u)
	}
	switch {
	case math.IsInf(lo, 1):
		lo, hi = 0, 1
	case hi-lo < 1e-9:
		if log {
			lo, hi = lo-0.5, hi+0.5
		} else {
			d := math.Max(math.Abs(lo)*0.5, 1)
			lo, hi = lo-d, hi+d
		}
	}
	if !log && lo > 0 && lo < (hi-lo) {
		lo = 0 // a linear axis of positive values starts at zero when that costs little room
	}
	m := (hi - lo) * margin
	a.lo, a.hi = lo-m, hi+m
	if !log && lo == 0 {
		a.lo = 0
	}
	return a
}

// ticks returns the values to label on a: on a log axis the decades, with
// 2 and 5 times them when there are fewer than three; on a linear one
// about five round values.
func ticks(a axis) []float64 {
	var out []float64
	if a.log {
		for e := math.Floor(a.lo); e <= math.Ceil(a.hi); e++ {
			if e >= a.lo && e <= a.hi {
				out = append(out, math.Pow(10, e))
			}
		}
		if len(out) < 3 {
			out = out[:0]
			for e := math.Floor(a.lo); e <= math.Ceil(a.hi); e++ {
				for _, m := range []float64{1, 2, 5} {
					u := e + math.Log10(m)
					if u >= a.lo && u <= a.hi {
						out = append(out, m*math.Pow(10, e))
					}
				}
			}
		}
		if len(out) < 3 {
			// Less than a decade: round values, placed on the log scale.
			return linearTicks(math.Pow(10, a.lo), math.Pow(10, a.hi))
		}
		return out
	}
	return linearTicks(a.lo, a.hi)
}

// linearTicks returns about five round values from lo to hi.
func linearTicks(lo, hi float64) []float64 {
	var out []float64
	step := niceStep((hi - lo) / 5)
	for v := math.Ceil(lo/step) * step; v <= hi+step*1e-9; v += step {
		out = append(out, math.Round(v/step)*step)
	}
	return out
}

// niceStep returns 1, 2 or 5 times a power of ten, at least raw.
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*e >= raw {
			return m * e
		}
	}
	return 10 * e
}

func hline(img *image.RGBA, x0, x1, y int, c color.RGBA) {
	for x := x0; x <= x1; x++ {
		img.SetRGBA(x, y, c)
	}
}

func vline(img *image.RGBA, x, y0, y1 int, c color.RGBA) {
	for y := y0; y <= y1; y++ {
		img.SetRGBA(x, y, c)
	}
}

// line draws a line 2.5 px wide from (x0, y0) to (x1, y1); dashed, it
// continues the dash pattern from dist, the length drawn before, and
// returns the length drawn after.
func line(img *image.RGBA, x0, y0, x1, y1 float64, c color.RGBA, dashed bool, dist float64) float64 {
	length := math.Hypot(x1-x0, y1-y0)
	steps := int(math.Ceil(length * 2))
	for i := 0; i <= steps; i++ {
		t := 0.0
		if steps > 0 {
			t = float64(i) / float64(steps)
		}
		d := dist + t*length
		if dashed && math.Mod(d, 12) >= 7 {
			continue
		}
		dot(img, x0+t*(x1-x0), y0+t*(y1-y0), 1.25, c)
	}
	return dist + length
}

// dot fills a disc of radius r.
func dot(img *image.RGBA, cx, cy, r float64, c color.RGBA) {
	for y := int(math.Floor(cy - r)); y <= int(math.Ceil(cy+r)); y++ {
		for x := int(math.Floor(cx - r)); x <= int(math.Ceil(cx+r)); x++ {
			if math.Hypot(float64(x)-cx, float64(y)-cy) <= r {
				img.SetRGBA(x, y, c)
			}
		}
	}
}

// marker draws a point: a disc, or a ring when hollow.
func marker(img *image.RGBA, cx, cy float64, c color.RGBA, hollow bool) {
	dot(img, cx, cy, 4.5, c)
	if hollow {
		dot(img, cx, cy, 2.5, white)
	}
}

var face = basicfont.Face7x13

func textWidth(s string) int { return font.MeasureString(face, s).Ceil() }

// text draws s with its baseline at y.
func text(img *image.RGBA, x, y int, s string, c color.RGBA) {
	d := &font.Drawer{Dst: img, Src: image.NewUniform(c), Face: face, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

// legend entries' sizes: a line sample, the gap to its label, the gap
// to the next entry, and the height of a row of entries.
const (
	legendSample = 24
	legendGap    = 6
	legendSpace  = 20
	legendRow    = 16
	legendTop    = 40 // baseline of the first row
)

// legendRows lays the series' entries out in rows under the title, as
// wide as the plot, and returns each entry's row and x.
func legendRows(series []Series) (rows int, at []image.Point) {
	x, row := 0, 0
	for _, s := range series {
		w := legendSample + legendGap + textWidth(s.Label)
		if x > 0 && x+w > plotWidth-16 {
			x, row = 0, row+1
		}
		at = append(at, image.Pt(x, row))
		x += w + legendSpace
	}
	if len(series) > 0 {
		rows = row + 1
	}
	return rows, at
}

// legend draws the series' entries in rows under the title, centred.
func legend(img *image.RGBA, series []Series) {
	rows, at := legendRows(series)
	for row := range rows {
		// Centre the row.
		width := 0
		for i, s := range series {
			if at[i].Y == row {
				width = at[i].X + legendSample + legendGap + textWidth(s.Label)
			}
		}
		x0 := (plotWidth - width) / 2
		for i, s := range series {
			if at[i].Y != row {
				continue
			}
			x, y := x0+at[i].X, legendTop+row*legendRow
			line(img, float64(x), float64(y-4), float64(x+legendSample), float64(y-4), s.Color, s.Dashed, 0)
			marker(img, float64(x+legendSample/2), float64(y-4), s.Color, false)
			text(img, x+legendSample+legendGap, y, s.Label, textColor)
		}
	}
}
