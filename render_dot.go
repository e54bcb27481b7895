package dag

// The DOT (Graphviz) form of a picture.

func (p *picture) dot(o *output) {
	p.anchors()
	o.str("digraph dag {\n")
	o.str("\tgraph [rankdir=LR, compound=true, fontname=\"Helvetica,Arial,sans-serif\", fontsize=12];\n")
	o.str("\tnode [shape=box, style=\"rounded,filled\", fontname=\"Helvetica,Arial,sans-serif\", fontsize=11, color=\"" + strokeColor + "\", fillcolor=\"" + palette[Pending].fill + "\", fontcolor=\"" + palette[Pending].font + "\"];\n")
	o.str("\tedge [color=\"" + strokeColor + "\", arrowsize=0.7];\n")
	for _, k := range p.top {
		p.dotItem(o, k, "\t")
	}
	for _, e := range p.edges {
		from, to := &p.items[e[0]], &p.items[e[1]]
		o.str("\t")
		if from.cluster() {
			o.id('n', from.last)
		} else {
			o.id('n', e[0])
		}
		o.str(" -> ")
		if to.cluster() {
			o.id('n', to.first)
		} else {
			o.id('n', e[1])
		}
		switch {
		case from.cluster() && to.cluster():
			o.str(" [ltail=")
			o.id('c', e[0])
			o.str(", lhead=")
			o.id('c', e[1])
			o.str("]")
		case from.cluster():
			o.str(" [ltail=")
			o.id('c', e[0])
			o.str("]")
		case to.cluster():
			o.str(" [lhead=")
			o.id('c', e[1])
			o.str("]")
		}
		o.str(";\n")
	}
	if p.res {
		// The legend is one node, an HTML-like table: far more compact
		// than a node per state.
		o.str("\tlegend [shape=plaintext, style=solid, margin=0, tooltip=\"states\", label=<<table border=\"0\" cellborder=\"1\" cellspacing=\"2\" cellpadding=\"3\"><tr><td border=\"0\">states</td></tr>")
		for _, s := range p.legend() {
			o.str("<tr><td bgcolor=\"" + palette[s].fill + "\"><font color=\"" + palette[s].font + "\">" + stateWords[s] + "</font></td></tr>")
		}
		if p.restored {
			o.str("<tr><td border=\"0\" cellpadding=\"0\"><table border=\"1\" cellborder=\"1\" cellspacing=\"2\" cellpadding=\"2\"><tr><td>restored</td></tr></table></td></tr>")
		}
		o.str("</table>>];\n")
	}
	o.str("}\n")
}

func (p *picture) dotItem(o *output, k int32, indent string) {
	it := &p.items[k]
	fill, font, bg := p.colors(it)
	if it.cluster() {
		o.str(indent + "subgraph ")
		o.id('c', k)
		o.str(" {\n" + indent + "\tlabel=\"")
		p.dotLabel(o, it)
		o.str("\"; tooltip=\"")
		dotTooltip(o, it)
		if p.res {
			o.str(`"; style="rounded,filled"; penwidth=2; color="`)
			o.str(fill)
			o.str(`"; fillcolor="`)
			o.str(bg)
			o.str("\";\n")
		} else {
			o.str(`"; style="rounded,filled"; color="` + strokeColor + `"; fillcolor="#fafafa";` + "\n")
		}
		for _, m := range it.members {
			p.dotItem(o, m, indent+"\t")
		}
		o.str(indent + "}\n")
		return
	}
	o.str(indent)
	o.id('n', k)
	o.str(" [label=\"")
	p.dotLabel(o, it)
	o.str("\", tooltip=\"")
	dotTooltip(o, it)
	o.str("\"")
	if p.res && it.state != Pending {
		o.str(`, fillcolor="`)
		o.str(fill)
		o.str(`", fontcolor="`)
		o.str(font)
		o.str(`"`)
	}
	if it.expand {
		o.str(", shape=hexagon")
	}
	if it.restore {
		o.str(", peripheries=2")
	}
	o.str("];\n")
}

func (p *picture) dotLabel(o *output, it *item) {
	o.text(dotFormat, it.short, labelMax)
	if p.res {
		o.str(`\n`)
		o.buf = it.status(o.buf)
	}
}

func dotTooltip(o *output, it *item) {
	o.text(dotFormat, it.name, tooltipMax)
	if it.err != nil {
		o.str(`\n`)
		o.text(dotFormat, it.err.Error(), tooltipMax)
	}
}
