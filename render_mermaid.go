package dag

// The Mermaid form of a picture.

func (p *picture) mermaid(o *output) {
	o.str("flowchart LR\n")
	classes := p.legend()
	if !p.res {
		classes = []State{Pending}
	}
	for _, s := range classes {
		o.str("\tclassDef " + s.String() + " fill:" + palette[s].fill + ",stroke:" + strokeColor + ",color:" + palette[s].font + "\n")
	}
	for _, k := range p.top {
		p.mermaidItem(o, k, "\t")
	}
	// Edges come last: an edge naming a subgraph before its definition
	// would make a node of that name.
	for _, e := range p.edges {
		o.str("\t")
		o.id('n', e[0])
		o.str(" --> ")
		o.id('n', e[1])
		o.str("\n")
	}
	// The groups' colours, at the top level where every renderer reads
	// them.
	for k := range p.items {
		it := &p.items[k]
		if !it.cluster() {
			continue
		}
		fill, _, bg := p.colors(it)
		if !p.res {
			fill, bg = strokeColor, "#fafafa"
		}
		o.str("\tstyle ")
		o.id('n', int32(k))
		o.str(" fill:" + bg + ",stroke:" + fill + ",stroke-width:2px\n")
	}
	if p.res {
		o.str("\tsubgraph legend [\"states\"]\n")
		for _, s := range p.legend() {
			o.str("\t\tlegend_" + s.String() + "[\"" + stateWords[s] + "\"]:::" + s.String() + "\n")
		}
		if p.restored {
			o.str("\t\tlegend_restored[[\"restored\"]]:::" + Completed.String() + "\n")
		}
		o.str("\tend\n")
	}
}

func (p *picture) mermaidItem(o *output, k int32, indent string) {
	it := &p.items[k]
	if it.cluster() {
		o.str(indent + "subgraph ")
		o.id('n', k)
		o.str(" [\"")
		p.mermaidLabel(o, it)
		o.str("\"]\n")
		for _, m := range it.members {
			p.mermaidItem(o, m, indent+"\t")
		}
		o.str(indent + "end\n")
		return
	}
	open, close := `["`, `"]`
	switch {
	case it.expand:
		open, close = `{{"`, `"}}`
	case it.restore:
		open, close = `[["`, `"]]`
	}
	o.str(indent)
	o.id('n', k)
	o.str(open)
	p.mermaidLabel(o, it)
	o.str(close + ":::")
	s := it.state
	if s >= numStates {
		s = Pending
	}
	o.str(s.String())
	o.str("\n")
}

func (p *picture) mermaidLabel(o *output, it *item) {
	o.text(mermaidFormat, it.short, labelMax)
	if p.res {
		o.str("<br>")
		o.buf = it.status(o.buf)
	}
}
