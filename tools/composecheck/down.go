package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// downLeavesNothing runs `down -v` and then looks for anything of the project: containers,
// networks and volumes by the compose project label, and the anonymous volumes (which carry no
// label) its containers had mounted.
func downLeavesNothing(ctx context.Context, s *stack) error {
	label := "label=com.docker.compose.project=" + s.cfg.project
	volumes, err := mountedVolumes(ctx, s, label)
	if err != nil {
		return err
	}
	if err := s.down(ctx); err != nil {
		return err
	}
	var problems []string
	for _, kind := range [][]string{{"ps", "--all"}, {"network", "ls"}, {"volume", "ls"}} {
		out, err := s.d.run(ctx, append(kind, "--quiet", "--filter", label)...)
		if err != nil {
			return err
		}
		if left := strings.Fields(out); len(left) > 0 {
			problems = append(problems, fmt.Sprintf("docker %s: %v", strings.Join(kind, " "), left))
		}
	}
	for _, v := range volumes {
		if _, err := s.d.run(ctx, "volume", "inspect", v); err == nil {
			problems = append(problems, "volume "+v+" is still there")
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// mountedVolumes lists the volumes mounted by the project's containers.
func mountedVolumes(ctx context.Context, s *stack, label string) ([]string, error) {
	ids, err := s.d.run(ctx, "ps", "--all", "--quiet", "--filter", label)
	if err != nil || strings.TrimSpace(ids) == "" {
		return nil, err
	}
	out, err := s.d.run(ctx, append([]string{"inspect", "-f", "{{range .Mounts}}{{if .Name}}{{.Name}} {{end}}{{end}}"}, strings.Fields(ids)...)...)
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}
